"""A Sphinx extension of the book build that stops notebook execution from stalling on a missed message.

jupyter-book (myst-nb -> nbclient) waits for each cell's reply with ``AsyncZMQSocketChannel.get_msg``,
which awaits one ``zmq.asyncio`` poll for the whole cell timeout. Now and then that poll misses the
kernel's reply (the kernel is idle, the message is there, the poll never wakes up), and the build then
waits the full timeout: 30 minutes per cell here. We saw it in this project's CI (the book build
stalled in attention.ipynb right after its widget cell; the kernel, asked over a second connection,
had finished every cell) and it is reported upstream for widget cells (jupyter/nbclient#312,
jupyter/nbconvert#2029).

The fix: poll in slices of at most one second. Each new poll first asks the socket whether a message
is waiting (``zmq.EVENTS``), so a missed wake-up costs at most a second instead of the timeout.
Timeouts keep their meaning: ``Empty`` is raised only when the whole timeout has passed. Loaded from
``_config.yml`` (``sphinx.local_extensions``); it changes nothing else.
"""
from __future__ import annotations

import time
from queue import Empty

from jupyter_client.channels import AsyncZMQSocketChannel

SLICE_S = 1.0


async def _get_msg_in_slices(self, timeout: float | None = None):
    """``get_msg`` with the same contract, polling at most ``SLICE_S`` at a time."""
    assert self.socket is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = SLICE_S if deadline is None else max(0.0, min(SLICE_S, deadline - time.monotonic()))
        if await self.socket.poll(int(wait * 1000)):
            return await self._recv()
        if deadline is not None and time.monotonic() >= deadline:
            raise Empty


def apply() -> None:
    """Install the sliced poll (idempotent)."""
    if getattr(AsyncZMQSocketChannel.get_msg, "_ifanp_sliced", False):
        return
    _get_msg_in_slices._ifanp_sliced = True
    AsyncZMQSocketChannel.get_msg = _get_msg_in_slices


apply()


def setup(app):
    from sphinx.util import logging

    apply()
    logging.getLogger(__name__).info(f"nbclient_poll: kernel replies are polled in slices of {SLICE_S:g} s")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
