"""ifanp — image completion with neural processes.

From Gaussian-process regression to the image-faced attentive neural process (IFANP) of
Yu et al., "Image Data Complementation Method Integrating Convolutional Neural Network and
Neural Process", Computer Systems & Applications 32(1):135-145, 2023.

The package is organised by concept: :mod:`ifanp.gp` (GP regression), :mod:`ifanp.data`
(datasets, context masks, 1-D function sampler), :mod:`ifanp.models` (NP family, IFNP, IFANP),
:mod:`ifanp.losses`, :mod:`ifanp.metrics`, :mod:`ifanp.train`, :mod:`ifanp.pretrained`,
:mod:`ifanp.plotting`, :mod:`ifanp.widgets` and the command line (``python -m ifanp``).
"""
from .config import apply_threads, data_root, get_device, get_profile, profile_value, seed_everything

apply_threads()

__version__ = "0.1.0"
__all__ = ["__version__", "data_root", "get_device", "get_profile", "profile_value", "seed_everything"]
