"""Sizes of the chapter "Experiments" (book/experiments.ipynb) in each run profile.

Read once, when the chapter imports this module; ``IFANP_PROFILE`` picks the column (smoke: seconds,
for the notebook tests; default: the book's build on a 2-core CPU; full: the paper-scale runs, for a GPU)."""
from ..config import profile_value

N_EVAL = profile_value(smoke=16, default=1000, full=None)  # evaluation images (None: all 5,000)
NLL_IMAGES = profile_value(smoke=8, default=50, full=1000)  # of those, images for the NLL
N_CHECK = profile_value(smoke=8, default=200, full=1000)  # images for the from-scratch PSNR check
TRAIN_STEPS = profile_value(smoke=5, default=3000, full=30000)  # steps per model, only when TRAIN
N_H2H = profile_value(smoke=8, default=200, full=1000)  # images for "Why not a VAE?" (calibration, masks, cost)
N_GP = profile_value(smoke=4, default=200, full=1000)  # images for the GP rows (a GP solve per image and ratio)
