"""ipywidgets front-ends for the book, one module per topic. Only wiring: every callback is a plain
plotting function from :mod:`ifanp.plotting`, so the static figures in the book use the same code."""
