"""A minimal ctypes binding of libagentws for the tests: a threaded manager in the agent protocol,
and the thread-safe emit calls. Every function used has explicit argtypes and restype.

The library is $AGENTWS_LIB, else <repo>/build/lib/libagentws.so.0. A sanitizer build of it needs
the sanitizer's runtime loaded first (LD_PRELOAD); meson passes that runtime's path as
$AGENTWS_LIB_PRELOAD, and `needs_preload()` says when this process was started without it.
"""

import ctypes as C
import os
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[2]

P = C.c_void_p

# Error codes (include/agentws.h).
ERR_INVALID_ARGUMENT = -1001
ERR_INVALID_STATE = -1003
ERR_NOT_FOUND = -1004
ERR_INVALID_UTF8 = -1009
ERR_INVALID_JSON = -1013
ERR_TOO_BIG = -1008

TARGET_USER = 1
TARGET_ROOM = 2


def lib_path() -> Path:
    env = os.environ.get("AGENTWS_LIB", "").strip()
    if env:
        return Path(env).resolve()
    return REPO_ROOT / "build" / "lib" / "libagentws.so.0"


def preload_path() -> Optional[str]:
    """The sanitizer runtime the library needs first in the process, if any."""
    return os.environ.get("AGENTWS_LIB_PRELOAD", "").strip() or None


def needs_preload() -> bool:
    """True if the library needs a runtime that is not preloaded into this process."""
    pre = preload_path()
    if pre is None:
        return False
    loaded = os.environ.get("LD_PRELOAD", "")
    return pre not in loaded.replace(":", " ").split()


class AgentwsError(RuntimeError):
    def __init__(self, rv: int, what: str):
        self.rv = rv
        super().__init__(f"{what}: {rv} {strerror(rv)}")


_lib = None


def load() -> C.CDLL:
    """Loads the library once and declares the functions the tests use."""
    global _lib
    if _lib is not None:
        return _lib
    lib = C.CDLL(str(lib_path()))

    def fn(name, restype, *argtypes):
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)

    fn("agentws_version", C.c_uint)
    fn("agentws_strerror", C.c_char_p, C.c_int)
    fn("agentws_err_name", C.c_char_p, C.c_int)
    fn("agentws_config_new", C.c_int, C.POINTER(P))
    fn("agentws_config_free", None, P)
    fn("agentws_config_set_dev_insecure", C.c_int, P, C.c_int)
    fn("agentws_config_set_ping_interval_ms", C.c_int, P, C.c_int64)
    fn("agentws_config_set_close_timeout_ms", C.c_int, P, C.c_int64)
    fn("agentws_config_set_backlog_events", C.c_int, P, C.c_int64)
    fn("agentws_config_set_max_conns_per_user", C.c_int, P, C.c_int)
    fn("agentws_manager_new_threaded", C.c_int, C.POINTER(P), P, P, P)
    fn("agentws_manager_listen", C.c_int, P, C.c_char_p, C.c_int, C.POINTER(C.c_int))
    fn("agentws_manager_start", C.c_int, P)
    fn("agentws_manager_stop", C.c_int, P)
    fn("agentws_manager_free", None, P)
    # int agentws_emit_custom(m, target, target_id, type, run_id, data_json)
    fn("agentws_emit_custom", C.c_int, P, C.c_int, C.c_char_p, C.c_char_p, C.c_char_p, C.c_char_p)
    _lib = lib
    return lib


def strerror(rv: int) -> str:
    return load().agentws_strerror(rv).decode("utf-8", "replace")


def err_name(rv: int) -> str:
    return load().agentws_err_name(rv).decode("utf-8", "replace")


def _check(rv: int, what: str) -> None:
    if rv != 0:
        raise AgentwsError(rv, what)


def _b(s: Optional[str]) -> Optional[bytes]:
    return None if s is None else s.encode("utf-8")


class Manager:
    """A threaded manager (the library runs its own loop thread), no callbacks."""

    def __init__(self, *, dev_insecure: bool = True, ping_interval_ms: int = 0,
                 backlog_events: Optional[int] = None, close_timeout_ms: Optional[int] = None,
                 max_conns_per_user: Optional[int] = None):
        lib = load()
        self._lib = lib
        self._m = P()
        self.port = 0
        self._started = False
        cfg = P()
        _check(lib.agentws_config_new(C.byref(cfg)), "agentws_config_new")
        try:
            _check(lib.agentws_config_set_dev_insecure(cfg, 1 if dev_insecure else 0), "set_dev_insecure")
            _check(lib.agentws_config_set_ping_interval_ms(cfg, ping_interval_ms), "set_ping_interval_ms")
            if backlog_events is not None:
                _check(lib.agentws_config_set_backlog_events(cfg, backlog_events), "set_backlog_events")
            if close_timeout_ms is not None:
                _check(lib.agentws_config_set_close_timeout_ms(cfg, close_timeout_ms), "set_close_timeout_ms")
            if max_conns_per_user is not None:
                _check(lib.agentws_config_set_max_conns_per_user(cfg, max_conns_per_user),
                       "set_max_conns_per_user")
            _check(lib.agentws_manager_new_threaded(C.byref(self._m), cfg, None, None),
                   "agentws_manager_new_threaded")
        finally:
            lib.agentws_config_free(cfg)

    @property
    def handle(self) -> int:
        return self._m.value

    def listen(self, host: str = "127.0.0.1", port: int = 0) -> int:
        bound = C.c_int(0)
        _check(self._lib.agentws_manager_listen(self._m, _b(host), port, C.byref(bound)),
               "agentws_manager_listen")
        if not self.port:
            self.port = bound.value
        return bound.value

    def start(self) -> None:
        _check(self._lib.agentws_manager_start(self._m), "agentws_manager_start")
        self._started = True

    def stop(self) -> int:
        """Thread-safe; graceful close on the library's thread, then joins it."""
        if not self._m:
            return 0
        return self._lib.agentws_manager_stop(self._m)

    def free(self) -> None:
        if self._m:
            self._lib.agentws_manager_free(self._m)
            self._m = P()

    def emit_custom(self, target: int, target_id: Optional[str], type_: Optional[str],
                    run_id: Optional[str], data_json: Optional[str]) -> int:
        """Thread-safe; returns the library's result code (0 or AGENTWS_ERR_*).

        ctypes releases the GIL for the call, so emits from several threads run concurrently."""
        return self._lib.agentws_emit_custom(self._m, target, _b(target_id), _b(type_), _b(run_id),
                                             _b(data_json))
