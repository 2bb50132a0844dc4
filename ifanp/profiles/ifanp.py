"""Sizes of the chapter "IFANP" (book/ifanp.ipynb) in each run profile.

Read once, when the chapter imports this module; ``IFANP_PROFILE`` picks the column (smoke: seconds,
for the notebook tests; default: the book's build on a 2-core CPU; full: the paper-scale runs, for a GPU)."""
from ..config import profile_value

NUM_IMAGES = profile_value(smoke=3, default=6, full=8)  # digits in Fig. 6
N_EVAL = profile_value(smoke=16, default=500, full=5000)  # for the table
RESPONSE_IMAGES = profile_value(smoke=2, default=20, full=100)  # locality
EXPLORE_IMAGES = profile_value(smoke=10, default=64, full=200)  # widget
TIMED_UPDATES = profile_value(smoke=3, default=12, full=12)  # widget timing
