"""The book's figure style, in one place: figures drawn for the column they are shown in.

The rendered book's content column is about 770 px wide at a 1300 px window (sphinx-book-theme), and
matplotlib's inline backend draws at ``figure.dpi = 100``: a figure of ``COLUMN_IN`` inches fills the
column at its natural size, and a wider one would be shrunk by the browser together with its text
(a 12.6-inch figure shown at 57 % turns 7 pt labels into 5 px). So, when a figure is shown in a
notebook, :func:`fit` narrows any figure wider than the column to the column's width and lets the
layout engine place its parts again (the fonts keep their size), and lifts any text below ``MIN_PT``
to it (8 pt at 100 dpi is 11.1 px on screen). The functions that draw the figures keep choosing
their own sizes; nothing here changes what they draw, only the size it is shown at.

:func:`apply` is called when :mod:`ifanp.plotting` is imported: it sets the rcParams below and, in an
IPython kernel with the inline backend, wraps the PNG formatter of matplotlib figures with :func:`fit`.
"""
from __future__ import annotations

import warnings

import matplotlib as mpl

COLUMN_PX = 770  # the book's content column at a 1300 px window
DPI = 100  # matplotlib's (and the inline backend's) figure.dpi
COLUMN_IN = COLUMN_PX / DPI  # 7.7 inches
MIN_PT = 8.0  # smallest text, in points: 11.1 px at 100 dpi
MIN_HEIGHT_SCALE = 0.8  # a narrowed figure keeps at least this share of its height

RC = {
    "figure.dpi": DPI,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 11,
}


def fit(fig, column_in: float = COLUMN_IN, min_pt: float = MIN_PT):
    """Narrow ``fig`` to ``column_in`` inches if it is wider, and lift text below ``min_pt``; returns ``fig``."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < min_pt:
            text.set_fontsize(min_pt)
    width, height = fig.get_size_inches()
    if width > column_in * 1.01:
        scale = column_in / width
        fig.set_size_inches(column_in, height * max(scale, MIN_HEIGHT_SCALE))
        if fig.get_layout_engine() is None:
            with warnings.catch_warnings():  # axes placed by hand keep their place: tight_layout says so
                warnings.simplefilter("ignore")
                try:
                    fig.set_layout_engine("tight")
                except Exception:  # noqa: BLE001, S110 - a figure that cannot take a layout engine stays as drawn
                    pass
    return fig


def _install_inline_hook() -> None:
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None or not hasattr(ip, "display_formatter"):
        return
    from matplotlib.figure import Figure

    png = ip.display_formatter.formatters.get("image/png")
    if png is None:
        return
    try:
        original = png.lookup_by_type(Figure)
    except KeyError:  # the inline backend is not active: nothing shows figures as PNG here
        return
    if getattr(original, "_ifanp_fit", False):
        return

    def show(fig):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return original(fit(fig))

    show._ifanp_fit = True
    png.for_type(Figure, show)


def apply() -> None:
    """Set the book's rcParams and, in a notebook, show every figure fitted to the column."""
    mpl.rcParams.update(RC)
    _install_inline_hook()
