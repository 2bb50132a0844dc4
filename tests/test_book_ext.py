"""The book build's nbclient_poll extension keeps the contract of jupyter_client's get_msg."""
from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from queue import Empty

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
import nbclient_poll
from jupyter_client.channels import AsyncZMQSocketChannel


class _Socket:
    """A socket whose message is ready only from the ``ready_after``-th poll on (a missed wake-up before)."""

    def __init__(self, ready_after: int):
        self.ready_after, self.polls, self.waits = ready_after, 0, []

    async def poll(self, timeout_ms):
        self.polls += 1
        self.waits.append(timeout_ms)
        if self.polls >= self.ready_after:
            return 1
        await asyncio.sleep(timeout_ms / 1000)
        return 0


class _Channel:
    get_msg = nbclient_poll._get_msg_in_slices

    def __init__(self, socket):
        self.socket = socket

    async def _recv(self):
        return {"msg_type": "execute_reply"}


def test_the_patch_is_installed_on_jupyter_clients_async_channel():
    assert AsyncZMQSocketChannel.get_msg is nbclient_poll._get_msg_in_slices


def test_a_message_is_returned_at_the_next_slice_even_without_a_timeout(monkeypatch):
    monkeypatch.setattr(nbclient_poll, "SLICE_S", 0.01)
    sock = _Socket(ready_after=4)
    msg = asyncio.run(_Channel(sock).get_msg(timeout=None))
    assert msg["msg_type"] == "execute_reply" and sock.polls == 4
    assert max(sock.waits) <= 10  # no poll waits longer than one slice


def test_empty_is_raised_only_when_the_whole_timeout_has_passed(monkeypatch):
    monkeypatch.setattr(nbclient_poll, "SLICE_S", 0.02)
    sock = _Socket(ready_after=10**9)
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(_Channel(sock).get_msg(timeout=0.1))
    elapsed = time.monotonic() - start
    assert elapsed >= 0.1 and sock.polls >= 4
