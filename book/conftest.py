"""pytest hooks for the chapters in this folder, which nbval runs as tests.

``pyproject.toml`` lists ``book`` in ``testpaths`` and passes ``--nbval-lax --nbval-current-env``, so
``pytest`` (and ``make test``) runs every ``book/*.ipynb`` cell by cell, in the test environment's
own Python, and fails on any cell that raises (the notebooks check themselves with ``assert``).
With ``-n 2 --dist loadfile`` each notebook stays on one xdist worker.

Here: every notebook runs in the ``smoke`` profile. nbval starts a notebook's kernel when the first
cell of that notebook is set up, and the kernel inherits the environment, so ``IFANP_PROFILE`` is
set just before that and restored after every cell: the package tests that share the worker process
see the environment unchanged. The notebook cells are marked ``notebook`` and ``book`` (deselect
them with ``-m "not book"``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

PROFILE = "smoke"
_HERE = Path(__file__).resolve().parent
_saved: list[str | None] = []


def _is_notebook_item(item: pytest.Item) -> bool:
    path = Path(str(item.path)).resolve()
    return path.suffix == ".ipynb" and _HERE in path.parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_notebook_item(item):
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.book)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if _is_notebook_item(item):
        _saved.append(os.environ.get("IFANP_PROFILE"))
        os.environ["IFANP_PROFILE"] = PROFILE


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if _is_notebook_item(item) and _saved:
        previous = _saved.pop()
        if previous is None:
            os.environ.pop("IFANP_PROFILE", None)
        else:
            os.environ["IFANP_PROFILE"] = previous
