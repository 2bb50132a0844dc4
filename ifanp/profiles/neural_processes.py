"""Sizes of the chapter "Neural processes" (book/neural_processes.ipynb) in each run profile.

Read once, when the chapter imports this module; ``IFANP_PROFILE`` picks the column (smoke: seconds,
for the notebook tests; default: the book's build on a 2-core CPU; full: the paper-scale runs, for a GPU)."""
from ..config import profile_value

GRID = profile_value(smoke=50, default=200, full=400)  # plotting grid
EVAL_TASKS = profile_value(smoke=4, default=128, full=512)  # functions in the table
SAMPLES = profile_value(smoke=4, default=32, full=32)  # z draws for NP and ANP
