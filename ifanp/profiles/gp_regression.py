"""Sizes of the chapter "Gaussian-process regression" (book/gp_regression.ipynb) in each run profile.

Read once, when the chapter imports this module; ``IFANP_PROFILE`` picks the column (smoke: seconds,
for the notebook tests; default: the book's build on a 2-core CPU; full: the paper-scale runs, for a GPU)."""
from ..config import profile_value

N_GRID = profile_value(smoke=120, default=300, full=400)  # points of the plotting grid
N_TRAIN = profile_value(smoke=16, default=30, full=40)  # noisy observations
LML_GRID = profile_value(smoke=12, default=40, full=60)  # grid side of the likelihood landscape
FIT_STEPS = profile_value(smoke=15, default=150, full=300)  # optimiser steps of the fit
COST_SIZES = profile_value(  # numbers of observations timed
    smoke=[100, 200, 400],
    default=[250, 500, 1000, 1500, 2000, 3000],
    full=[500, 1000, 2000, 3000, 4000, 6000],
)
