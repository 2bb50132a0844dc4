"""Sizes of the chapter "Images as functions" (book/images_as_functions.ipynb) in each run profile.

Read once, when the chapter imports this module; ``IFANP_PROFILE`` picks the column (smoke: seconds,
for the notebook tests; default: the book's build on a 2-core CPU; full: the paper-scale runs, for a GPU)."""
from ..config import profile_value

N_EVAL = profile_value(smoke=8, default=300, full=5000)  # test images per ratio
NLL_IMAGES = profile_value(smoke=4, default=100, full=1000)  # of those, images for the NLL
NLL_SAMPLES = profile_value(smoke=2, default=8, full=16)  # draws of z per image for the NLL
COST_SIZES = profile_value(  # image sides for the timing
    smoke=(8, 12), default=(16, 24, 32, 48, 64), full=(16, 32, 64, 96, 128))
TRAIN_STEPS = profile_value(smoke=5, default=3000, full=30000)  # only used when TRAIN
