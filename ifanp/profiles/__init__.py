"""The sizes of each chapter of the book in each run profile, one module per chapter.

A chapter imports its own: ``from ifanp.profiles.ifnp import N_EVAL, TRAIN_STEPS``. The values are read
from ``IFANP_PROFILE`` (:func:`ifanp.config.profile_value`) when the module is first imported; every
profile runs the same code, only these sizes change.
"""
