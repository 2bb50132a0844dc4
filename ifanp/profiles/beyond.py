"""Sizes of the chapter "Beyond the paper" (book/beyond.ipynb) in each run profile.

Read once, when the chapter imports this module; ``IFANP_PROFILE`` picks the column (smoke: seconds,
for the notebook tests; default: the book's build on a 2-core CPU; full: the paper-scale runs, for a GPU)."""
from ..config import profile_value

N_EVAL = profile_value(smoke=16, default=1000, full=5000)  # evaluation images for the goal
NLL_IMAGES = profile_value(smoke=4, default=100, full=1000)  # of those, images for the NLL
N_STRUCT = profile_value(smoke=8, default=500, full=5000)  # images per structured mask kind
N_CAL = profile_value(smoke=8, default=500, full=5000)  # images for the calibration
CAL_SAMPLES = profile_value(smoke=2, default=8, full=16)  # draws of z for the predictive
N_ATT = profile_value(smoke=4, default=100, full=500)  # images for the attention distances
TRAIN_STEPS = profile_value(smoke=5, default=6000, full=30000)  # only used when TRAIN
# The predictive-distribution sections ([beyond], ifanp.npf and ifanp.calibration)
N_NPF = profile_value(smoke=16, default=1000, full=10000)  # 32x32 test images recomputed (the whole split: registry)
N_NPF_LATENT = profile_value(smoke=4, default=100, full=10000)  # test images of the 28x28 latent models there
NPF_SAMPLES = profile_value(smoke=4, default=32, full=32)  # z draws of their Monte-Carlo log-likelihood
N_CALIB = profile_value(smoke=4, default=500, full=2000)  # images per model for interval coverage
