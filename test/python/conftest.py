"""Shared helpers for the binding tests (examples/python/agentws.py).

The library is $AGENTWS_LIBRARY (meson sets it to the built .so), else
<repo>/build/lib/libagentws.so.0. Every C function the binding calls goes
through a counting wrapper, so test_binding.py can show that each public
function is reachable. Every network wait is bounded; loopback only.
"""

import asyncio
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import websockets

REPO = Path(__file__).resolve().parents[2]
HEADER = REPO / "include" / "agentws.h"
sys.path.insert(0, str(REPO / "examples" / "python"))
os.environ.setdefault("AGENTWS_LIBRARY",
                      str(REPO / "build" / "lib" / "libagentws.so.0"))

import agentws  # noqa: E402  (needs the path above)

CALLED = set()       # C functions called through the binding
ORIGINAL = {}        # name -> the ctypes function object itself


def _count_calls(lib):
    for name in agentws.FUNCTIONS:
        fn = getattr(lib, name)
        ORIGINAL[name] = fn

        def counted(*args, _fn=fn, _name=name):
            CALLED.add(_name)
            return _fn(*args)
        counted.__name__ = name
        setattr(lib, name, counted)


_count_calls(agentws.load())


def load_checker():
    """test/abi/check-ctypes.py as a module (its header parser)."""
    spec = importlib.util.spec_from_file_location(
        "check_ctypes", REPO / "test" / "abi" / "check-ctypes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(coro, timeout=30):
    """Runs a test coroutine on a fresh event loop, bounded."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def connect(m, query="", headers=None, subprotocols=("agentws.v1",)):
    """A websockets client of manager |m| (use with `async with`)."""
    return websockets.connect(
        m.url + query, subprotocols=list(subprotocols),
        extra_headers=headers or {}, open_timeout=5, close_timeout=2,
        ping_interval=None, max_size=None)


async def recv_json(ws, timeout=5):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_events(ws, n, timeout=5):
    """The next |n| messages that carry a seq (events)."""
    out = []
    while len(out) < n:
        msg = await recv_json(ws, timeout)
        if "seq" in msg and msg["type"] != "welcome":
            out.append(msg)
    return out


async def wait_for(pred, timeout=5):
    """Polls |pred| until it is true (for state set by handlers)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def manager():
    """Makes managers for a test and closes them all at its end."""
    made = []

    def make(**options):
        options.setdefault("ping_interval_ms", 0)
        m = agentws.Manager(**options)
        made.append(m)
        return m
    yield make
    for m in made:
        m.close()
