"""Sizes of the chapter "Attention for images: LPA and GCA" (book/attention.ipynb) in each run profile.

Read once, when the chapter imports this module; ``IFANP_PROFILE`` picks the column (smoke: seconds,
for the notebook tests; default: the book's build on a 2-core CPU; full: the paper-scale runs, for a GPU)."""
from ..config import profile_value

NUM_IMAGES = profile_value(smoke=4, default=6, full=6)  # test digits
COST_SIZES = profile_value(  # image sizes timed
    smoke=[14, 28], default=[14, 20, 28, 40, 48, 56, 64],
    full=[14, 20, 28, 40, 56, 64, 80, 96])
COST_REPEATS = profile_value(smoke=1, default=5, full=5)  # best of
