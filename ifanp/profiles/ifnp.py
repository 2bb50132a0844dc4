"""Sizes of the chapter "The image-faced neural process (IFNP)" (book/ifnp.ipynb) in each run profile.

Read once, when the chapter imports this module; ``IFANP_PROFILE`` picks the column (smoke: seconds,
for the notebook tests; default: the book's build on a 2-core CPU; full: the paper-scale runs, for a GPU)."""
from ..config import profile_value

N_EVAL = profile_value(smoke=8, default=300, full=5000)  # test images per ratio
NLL_IMAGES = profile_value(smoke=4, default=100, full=1000)  # of those, images for the NLL
MC_SAMPLES = profile_value(smoke=2000, default=20000, full=100000)  # draws for the KL check
ELBO_REPEATS = profile_value(smoke=4, default=12, full=100)  # repeats of each bound
SWEEP = profile_value(  # context ratios of the last figure
    smoke=(0.2, 0.6), default=(0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.95),
    full=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95))
TRAIN_STEPS = profile_value(smoke=5, default=3000, full=30000)  # only used when TRAIN
