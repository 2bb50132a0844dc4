"""Plotting helpers for the book, one module per topic (``ifanp.plotting.gp``, ``.np1d``, ``.images``).

The functions take tensors/arrays and return matplotlib figures; the widgets in :mod:`ifanp.widgets`
only wire controls to these functions.
"""
from . import style

style.apply()  # the book's rcParams; in a notebook, figures are shown fitted to the page column
