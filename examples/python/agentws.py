"""agentws: stream AI-agent lifecycle events to WebSocket clients from Python.

A binding of libagentws through ctypes: standard library only, no compiler,
no extension module. The library runs its own loop thread; Python emits
from any thread (or coroutine) and gets callbacks on that thread, or on an
asyncio loop when it asks for it.

    import agentws
    with agentws.Manager(port=8080, dev_insecure=True) as m:
        m.agent_started("r-1", "researcher", user="alice")
        m.agent_thinking("r-1", "Looking it up", user="alice")
        m.agent_completed("r-1", 1200, {"text": "done"}, user="alice")

Threads (the library's rules, kept by this module):
  * emit methods, stats(), set_jwt_keys(), call_soon() and close() are
    thread-safe and return at once (emit copies its arguments and queues
    them; it never waits for the network or the library's thread), so
    coroutines call them directly: they never block the event loop;
  * handlers run on the library's thread, one at a time; with
    Manager(loop=...) the notification handlers (on_open, on_close,
    on_message, on_client_message, on_gap, on_violation, on_alert, on_log)
    run on that asyncio loop instead (coroutine functions become tasks);
    on_authenticate, on_join and on_http answer the library and so always
    run on its thread;
  * connection calls (send, close_connection, room_add, ...) run on the
    library's thread only: inside a handler, or through call_soon() / run();
  * an exception in a handler is logged (logger "agentws") and never
    reaches C; every handler and ctypes callback object stays referenced
    until close() has stopped the library's thread.

Library: Manager(library=PATH), load(PATH), else $AGENTWS_LIBRARY, else the
system's search (ctypes.util.find_library, then "libagentws.so.0").
"""

import asyncio
import atexit
import concurrent.futures
import ctypes as C
import ctypes.util
import dataclasses
import inspect
import itertools
import json
import logging
import operator
import os
import threading
import time
import urllib.parse

__all__ = [
    "AgentwsError", "Manager", "KeySet", "Request", "Violation", "Alert",
    "ConnectionInfo", "load", "lib", "version", "version_string",
    "strerror", "err_name", "log_to_logging", "FUNCTIONS", "CALLBACK_TYPES",
]

SONAME = "libagentws.so.0"
MIN_VERSION = 0x000100

_log = logging.getLogger("agentws")

# ------------------------------------------------------------ constants
# Values of include/agentws.h (numbers are never reused, so they can be
# copied here: the header is not needed at run time).
ERR_INVALID_ARGUMENT = -1001
ERR_OUT_OF_RANGE = -1002
ERR_INVALID_STATE = -1003
ERR_NOT_FOUND = -1004
ERR_WRONG_THREAD = -1005
ERR_CLOSING = -1006
ERR_QUEUE_FULL = -1007
ERR_TOO_BIG = -1008
ERR_INVALID_UTF8 = -1009
ERR_CALLBACK_FAILURE = -1010
ERR_INVALID_CLOSE_CODE = -1011
ERR_LIMIT = -1012
ERR_INVALID_JSON = -1013
ERR_VALIDATION = -1014
ERR_NOMEM = -1900
ERR_INTERNAL = -1901

MSG_TEXT, MSG_BINARY = 1, 2
TARGET_USER, TARGET_ROOM = 1, 2
CLOSE_NORMAL, CLOSE_GOING_AWAY = 1000, 1001

VALIDATION = {"off": 0, "warn": 1, "strict": 2, "repair": 3}
RULES = ("schema", "run_not_started", "duplicate_start", "orphan_tool_result",
         "duplicate_tool_call", "event_after_terminal", "open_tools_at_end",
         "run_stalled", "tool_timeout", "run_limit")
LOG_LEVELS = {"error": 0, "warn": 1, "info": 2, "debug": 3}
QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "p999": 0.999}

# ---------------------------------------------------------- the C table
P = C.c_void_p          # opaque handles and byte buffers read with string_at
S = C.c_char_p          # NUL-terminated UTF-8, or bytes passed with a length
I, U, D = C.c_int, C.c_uint, C.c_double
I64, U64, SZ = C.c_int64, C.c_uint64, C.c_size_t
PP, PS = C.POINTER(C.c_void_p), C.POINTER(C.c_char_p)
PI, PI64 = C.POINTER(C.c_int), C.POINTER(C.c_int64)
PU64, PSZ = C.POINTER(C.c_uint64), C.POINTER(C.c_size_t)

# Callback typedefs. Byte buffers that come with a length are P (read with
# ctypes.string_at); NUL-terminated strings are S (ctypes copies to bytes).
CALLBACK_TYPES = {
    "agentws_on_open_cb": C.CFUNCTYPE(None, P, U64, P),
    "agentws_on_message_cb": C.CFUNCTYPE(I, P, U64, I, P, SZ, P),
    "agentws_on_close_cb": C.CFUNCTYPE(None, P, U64, I, P, SZ, P),
    "agentws_closed_cb": C.CFUNCTYPE(None, P, P),
    "agentws_post_cb": C.CFUNCTYPE(None, P, P),
    "agentws_on_authenticate_cb": C.CFUNCTYPE(I, P, U64, P, P),
    "agentws_on_join_cb": C.CFUNCTYPE(I, P, U64, S, S, P),
    "agentws_on_client_message_cb": C.CFUNCTYPE(None, P, U64, S, S, P, SZ, P),
    "agentws_on_gap_cb": C.CFUNCTYPE(None, P, U64, S, U64, U64, P),
    "agentws_on_violation_cb": C.CFUNCTYPE(None, P, I, I, S, I, S, S, P),
    "agentws_on_alert_cb": C.CFUNCTYPE(None, P, P, P),
    "agentws_on_http_cb": C.CFUNCTYPE(I, P, U64, P, P),
    "agentws_on_log_cb": C.CFUNCTYPE(None, P, I, S, P),
    "agentws_malloc_cb": C.CFUNCTYPE(P, SZ, P),
    "agentws_free_cb": C.CFUNCTYPE(None, P, P),
    "agentws_calloc_cb": C.CFUNCTYPE(P, SZ, SZ, P),
    "agentws_realloc_cb": C.CFUNCTYPE(P, P, SZ, P),
}
CB = {k[len("agentws_"):-len("_cb")]: v for k, v in CALLBACK_TYPES.items()}


def _config_setters(restype, argtype, *names):
    return {f"agentws_config_{n}": (restype, [P, argtype]) for n in names}


# Every AGENTWS_EXTERN function of agentws.h: name -> (restype, argtypes).
FUNCTIONS = {
    # errors, version
    "agentws_strerror": (S, [I]),
    "agentws_err_name": (S, [I]),
    "agentws_strerror_r": (I, [I, S, SZ]),
    "agentws_err_is_fatal": (I, [I]),
    "agentws_version": (U, []),
    "agentws_version_string": (S, []),
    # config
    "agentws_config_new": (I, [PP]),
    "agentws_config_free": (None, [P]),
    **_config_setters(I, S, "set_ws_path", "add_allowed_origin",
                      "add_subprotocol", "set_jwt_algorithms",
                      "set_jwt_issuer", "set_jwt_audience",
                      "set_jwt_user_claim", "set_jwt_required_scope",
                      "set_token_sources", "set_token_query_param",
                      "set_token_cookie", "set_http_token"),
    **_config_setters(I, U64, "set_max_message_size", "set_max_queued_bytes",
                      "set_max_header_bytes", "set_socket_send_buffer",
                      "set_backlog_bytes", "set_max_client_message",
                      "set_max_event_bytes", "set_alert_queue_bytes",
                      "set_ready_max_queued_bytes"),
    **_config_setters(I, I64, "set_handshake_timeout_ms",
                      "set_ping_interval_ms", "set_pong_timeout_ms",
                      "set_idle_timeout_ms", "set_close_timeout_ms",
                      "set_max_connections", "set_backlog_events",
                      "set_backlog_age_ms", "set_auth_timeout_ms",
                      "set_jwt_leeway_s", "set_jwt_cache_size",
                      "set_token_expiring_s", "set_stall_timeout_ms",
                      "set_tool_timeout_ms", "set_max_live_runs",
                      "set_run_keep_ms", "set_monitor_interval_ms",
                      "set_alert_loop_lag_ms", "set_alert_ack_timeout_ms",
                      "set_alert_auth_timeouts", "set_alert_violations_per_s",
                      "set_alert_window_ms", "set_ready_max_loop_lag_ms"),
    **_config_setters(I, I, "set_max_headers", "set_healthz",
                      "set_listen_backlog", "set_raw_messages",
                      "set_dev_insecure", "set_max_conns_per_user",
                      "set_client_rate", "set_jwt_require_exp",
                      "set_validation", "set_monitor", "set_metrics",
                      "set_readyz", "set_log_level"),
    "agentws_config_set_validation_rule": (I, [P, I, I]),
    "agentws_config_set_jwt_keys": (I, [P, P]),
    "agentws_config_set_allocator": (I, [P, CB["malloc"], CB["free"],
                                         CB["calloc"], CB["realloc"], P]),
    # callbacks
    "agentws_callbacks_new": (I, [PP]),
    "agentws_callbacks_free": (None, [P]),
    **{f"agentws_callbacks_set_{hook}": (None, [P, cbtype])
       for hook, cbtype in CB.items() if hook.startswith("on_")},
    # manager
    "agentws_manager_new": (I, [PP, P, P, P, P]),
    "agentws_manager_new_threaded": (I, [PP, P, P, P]),
    "agentws_manager_start": (I, [P]),
    "agentws_manager_stop": (I, [P]),
    "agentws_manager_listen": (I, [P, S, I, PI]),
    "agentws_manager_adopt": (I, [P, I, S, SZ, PU64]),
    "agentws_manager_close": (I, [P, CB["closed"], P]),
    "agentws_manager_free": (None, [P]),
    "agentws_manager_get_user_data": (P, [P]),
    "agentws_manager_set_user_data": (None, [P, P]),
    "agentws_manager_post": (I, [P, CB["post"], P]),
    "agentws_manager_get_num_connections": (U64, [P]),
    "agentws_manager_set_jwt_keys": (I, [P, P]),
    "agentws_manager_get_stats": (I, [P, P]),
    "agentws_manager_get_queued_events": (U64, [P]),
    # connections, users, rooms
    "agentws_conn_send": (I, [P, U64, I, S, SZ]),
    "agentws_conn_close": (I, [P, U64, I, S, SZ]),
    "agentws_conn_set_user_data": (I, [P, U64, P]),
    "agentws_conn_get_user_data": (I, [P, U64, PP]),
    "agentws_conn_get_subprotocol": (I, [P, U64, PS]),
    "agentws_conn_accept": (I, [P, U64, S]),
    "agentws_conn_refuse": (I, [P, U64, I, S]),
    "agentws_conn_get_user": (I, [P, U64, PS]),
    "agentws_conn_get_remote_address": (I, [P, U64, PS]),
    "agentws_conn_get_connected_at": (I, [P, U64, PI64]),
    "agentws_conn_get_token_exp": (I, [P, U64, PI64]),
    "agentws_conn_in_room": (I, [P, U64, S]),
    "agentws_user_list_connections": (I, [P, S, PU64, SZ, PSZ]),
    "agentws_user_disconnect": (I, [P, S, I, S, SZ, PSZ]),
    "agentws_room_add": (I, [P, U64, S]),
    "agentws_room_remove": (I, [P, U64, S]),
    # requests (on_authenticate, on_http)
    "agentws_request_get_target": (S, [P]),
    "agentws_request_get_header": (S, [P, S]),
    "agentws_request_get_header_count": (SZ, [P]),
    "agentws_request_get_header_at": (I, [P, SZ, PS, PS]),
    "agentws_request_get_remote_address": (S, [P]),
    "agentws_request_get_method": (S, [P]),
    "agentws_request_get_user": (S, [P]),
    "agentws_request_get_claims": (S, [P]),
    "agentws_http_respond": (I, [P, U64, I, S, S, SZ]),
    # key sets
    "agentws_keyset_new": (I, [PP]),
    "agentws_keyset_free": (None, [P]),
    "agentws_keyset_add_secret": (I, [P, S, S, SZ]),
    "agentws_keyset_add_pem": (I, [P, S, S, SZ]),
    "agentws_keyset_add_jwks": (I, [P, S, SZ]),
    "agentws_keyset_add_jwks_file": (I, [P, S]),
    "agentws_keyset_count": (I, [P]),
    # names
    "agentws_rule_name": (S, [I]),
    "agentws_outcome_name": (S, [I]),
    "agentws_alert_rule_name": (S, [I]),
    "agentws_severity_name": (S, [I]),
    "agentws_log_level_name": (S, [I]),
    "agentws_stat_name": (S, [I]),
    "agentws_hist_name": (S, [I]),
    # stats
    "agentws_stats_new": (I, [PP]),
    "agentws_stats_free": (None, [P]),
    "agentws_stats_get": (U64, [P, I]),
    "agentws_stats_hist_count": (U64, [P, I]),
    "agentws_stats_hist_sum_ns": (U64, [P, I]),
    "agentws_stats_hist_quantile": (I, [P, I, D, PU64]),
    # alerts (inside on_alert)
    "agentws_alert_get_rule": (I, [P]),
    "agentws_alert_get_severity": (I, [P]),
    "agentws_alert_is_firing": (I, [P]),
    "agentws_alert_get_conn": (U64, [P]),
    "agentws_alert_get_target": (S, [P]),
    "agentws_alert_get_run": (S, [P]),
    "agentws_alert_get_tool_call": (S, [P]),
    "agentws_alert_get_value": (I64, [P]),
    "agentws_alert_get_threshold": (I64, [P]),
    "agentws_alert_get_message": (S, [P]),
    # emit (thread-safe)
    "agentws_emit_agent_started": (I, [P, I, S, S, S, S]),
    "agentws_emit_agent_thinking": (I, [P, I, S, S, S, SZ, S]),
    "agentws_emit_tool_executing": (I, [P, I, S, S, S, S, S]),
    "agentws_emit_tool_completed": (I, [P, I, S, S, S, S, I, I64, S]),
    "agentws_emit_agent_completed": (I, [P, I, S, S, I64, S, S]),
    "agentws_emit_agent_error": (I, [P, I, S, S, S, S, S, I, S]),
    "agentws_emit_custom": (I, [P, I, S, S, S, S]),
}

# ------------------------------------------------------------- loading
_libs = {}
_libs_lock = threading.Lock()


def _library_name(path=None):
    if path:
        return os.fspath(path)
    env = os.environ.get("AGENTWS_LIBRARY", "").strip()
    if env:
        return env
    # find_library may name another ABI's SONAME; this binding is for .so.0.
    found = ctypes.util.find_library("agentws")
    return found if found == SONAME else SONAME


def load(path=None):
    """Loads libagentws (once per path) and declares every function."""
    if isinstance(path, C.CDLL):
        return path  # one load() made already
    name = _library_name(path)
    with _libs_lock:
        lib = _libs.get(name)
        if lib is None:
            lib = C.CDLL(name)
            for fname, (restype, argtypes) in FUNCTIONS.items():
                try:
                    fn = getattr(lib, fname)
                except AttributeError:
                    raise OSError(f"{name} has no {fname}: older than this "
                                  "binding?") from None
                fn.restype, fn.argtypes = restype, argtypes
            if lib.agentws_version() < MIN_VERSION:
                raise OSError(f"{name} is version "
                              f"{lib.agentws_version_string().decode()}, "
                              "this binding needs 0.1.0 or later")
            _libs[name] = lib
        return lib


def lib(path=None):
    """The loaded ctypes.CDLL, every function declared (for raw calls)."""
    return load(path)


# -------------------------------------------------------------- errors
class AgentwsError(Exception):
    """A libagentws call failed: |code| (AGENTWS_ERR_* or a libuv status),
    its symbolic |name|, the library's |message|, and the C function."""

    def __init__(self, code, name, message, func=None):
        super().__init__(code, name, message)
        self.code, self.name, self.message, self.func = code, name, message, func

    def __str__(self):
        where = f"{self.func}: " if self.func else ""
        return f"{where}{self.message} ({self.name}, {self.code})"


def _error(lib_, rv, func=None, detail=None):
    message = lib_.agentws_strerror(rv).decode("utf-8", "replace")
    if detail:
        message = f"{message}: {detail}"
    return AgentwsError(rv, lib_.agentws_err_name(rv).decode(), message, func)


def _check(lib_, rv, func):
    if rv < 0:
        raise _error(lib_, rv, func)
    return rv


def strerror(code, library=None):
    return load(library).agentws_strerror(code).decode("utf-8", "replace")


def err_name(code, library=None):
    return load(library).agentws_err_name(code).decode()


def version(library=None):
    return load(library).agentws_version()


def version_string(library=None):
    return load(library).agentws_version_string().decode()


# --------------------------------------------------------- conversions
_cstr_cache = {}  # str -> bytes: ids and names repeat on every emit


def _cstr(value, what):
    """str -> NUL-terminated UTF-8 bytes. A NUL inside would cut the string
    short in C without anyone noticing, so it is refused here."""
    if value is None:
        return None
    if isinstance(value, str):
        b = _cstr_cache.get(value)
        if b is None:
            b = _no_nul(value.encode(), what)
            if len(_cstr_cache) >= 4096:  # bounded; dict ops hold the GIL
                _cstr_cache.clear()
            _cstr_cache[value] = b
        return b
    return _no_nul(bytes(value), what)


def _no_nul(b, what):
    if b"\0" in b:
        raise AgentwsError(ERR_INVALID_ARGUMENT, "AGENTWS_ERR_INVALID_ARGUMENT",
                           f"{what} contains a NUL byte")
    return b


def _buf(value):
    """Bytes for a (pointer, length) argument: str is UTF-8, NUL allowed."""
    return value.encode() if isinstance(value, str) else bytes(value)


def _json(value, what):
    """JSON text for a *_json argument: str/bytes are JSON text already,
    anything else is serialized. (Not cached: payloads rarely repeat.)"""
    if value is None:
        return None
    if not isinstance(value, (str, bytes, bytearray)):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                           allow_nan=False)
    return _no_nul(value.encode() if isinstance(value, str) else bytes(value),
                   what)


def _text(b):
    return None if b is None else b.decode("utf-8", "replace")


def _int(value):
    return int(value) if isinstance(value, bool) else operator.index(value)


def log_to_logging(level, message):
    """An on_log handler that forwards the library's lines to the logger
    "agentws.lib" (error/warn/info/debug)."""
    logging.getLogger("agentws.lib").log(
        {"error": logging.ERROR, "warn": logging.WARNING,
         "info": logging.INFO}.get(level, logging.DEBUG), "%s", message)


# ----------------------------------------------------------- key sets
class KeySet:
    """JWT verification keys (agentws_keyset). Give it to
    Manager(jwt_keys=...) or Manager.set_jwt_keys(): they take their own
    reference and freeze it; then close() (or leave the with block).
    The add_* methods return the set, so they chain."""

    def __init__(self, *, library=None):
        self._lib, self._ptr = load(library), P()
        _check(self._lib, self._lib.agentws_keyset_new(C.byref(self._ptr)),
               "agentws_keyset_new")

    def _add(self, func, *args):
        _check(self._lib, getattr(self._lib, func)(self._ptr, *args), func)
        return self

    def add_secret(self, secret, kid=None):
        """An HMAC secret (bytes, at least 32)."""
        secret = _buf(secret)
        return self._add("agentws_keyset_add_secret", _cstr(kid, "kid"),
                         secret, len(secret))

    def add_pem(self, pem, kid=None):
        """A PEM public key or certificate (RSA >= 2048 bits, EC)."""
        pem = _buf(pem)
        return self._add("agentws_keyset_add_pem", _cstr(kid, "kid"), pem,
                         len(pem))

    def add_jwks(self, doc):
        """A JWKS document or one JWK: JSON text or a dict."""
        doc = _buf(doc if isinstance(doc, (str, bytes)) else json.dumps(doc))
        return self._add("agentws_keyset_add_jwks", doc, len(doc))

    def add_jwks_file(self, path):
        return self._add("agentws_keyset_add_jwks_file",
                         _cstr(os.fspath(path), "path"))

    def __len__(self):
        return self._lib.agentws_keyset_count(self._ptr)

    def close(self):
        if self._ptr:
            self._lib.agentws_keyset_free(self._ptr)
            self._ptr = P()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------ handler values
@dataclasses.dataclass(frozen=True)
class Violation:
    """A validator finding (on_violation)."""
    rule: str        # "orphan_tool_result", ...
    outcome: str     # "warned", "refused", "repaired", "dropped"
    run_id: str
    target: str      # "user" or "room"
    target_id: str
    message: str


@dataclasses.dataclass(frozen=True)
class Alert:
    """A monitor alert firing or clearing (on_alert)."""
    rule: str        # "run_stalled", "slow_consumer", ...
    severity: str    # "info", "warning", "critical"
    firing: bool
    conn: int
    target: str
    run: str
    tool_call: str
    value: int
    threshold: int
    message: str


@dataclasses.dataclass(frozen=True)
class ConnectionInfo:
    user: str
    remote_address: str
    connected_at_ms: int
    subprotocol: str
    token_exp: int   # Unix s, 0: none


class Request:
    """The HTTP request of on_authenticate or on_http.

    method, target, path, query, remote_address, user (of a verified JWT)
    and claims are copied. header(name) and headers() read the request
    during the hook; after defer() every header line is copied, so both
    stay readable from any thread.

    on_authenticate answers with accept(user) / refuse(status, reason), or
    by returning a user id (accept) or None/False (refuse 403). To answer
    later, call defer() and then accept/refuse from any thread within
    auth_timeout_ms (then the client gets 503)."""

    def __init__(self, manager, conn_id, ptr):
        lib_ = manager._lib
        self._mgr, self._lib, self._ptr = manager, lib_, ptr
        self.conn_id = conn_id
        self.method = _text(lib_.agentws_request_get_method(ptr))
        self.target = _text(lib_.agentws_request_get_target(ptr)) or ""
        self.remote_address = _text(
            lib_.agentws_request_get_remote_address(ptr))
        self.user = _text(lib_.agentws_request_get_user(ptr))
        claims = lib_.agentws_request_get_claims(ptr)
        self.claims = json.loads(claims) if claims else None
        self._headers = None
        self._in_hook = True
        self.deferred = self.answered = False

    @property
    def path(self):
        return urllib.parse.urlsplit(self.target).path

    @property
    def query(self):
        """The query parameters, first value of each."""
        q = urllib.parse.urlsplit(self.target).query
        return {k: v[0] for k, v in urllib.parse.parse_qs(q).items()}

    def header(self, name):
        """The first header line named |name| (any case), or None."""
        if self._in_hook and self._mgr._on_loop():
            return _text(self._lib.agentws_request_get_header(
                self._ptr, _cstr(name, "name")))
        if self._headers is not None:
            for n, v in self._headers:
                if n.lower() == name.lower():
                    return v
            return None
        raise _error(self._lib, ERR_INVALID_STATE, "Request.header",
                     f"header {name!r} is readable only inside the hook")

    def headers(self):
        """Every header line as (name, value), in the order received."""
        if self._headers is not None:
            return list(self._headers)
        if not (self._in_hook and self._mgr._on_loop()):
            raise _error(self._lib, ERR_INVALID_STATE, "Request.headers",
                         "headers are readable only inside the hook")
        lib_, out = self._lib, []
        name, value = C.c_char_p(), C.c_char_p()
        for i in range(lib_.agentws_request_get_header_count(self._ptr)):
            _check(lib_, lib_.agentws_request_get_header_at(
                self._ptr, i, C.byref(name), C.byref(value)),
                "agentws_request_get_header_at")
            out.append((_text(name.value), _text(value.value)))
        return out

    def defer(self):
        """Answer later (accept/refuse from any thread); the headers are
        copied first."""
        self._headers = self.headers()
        self.deferred = True

    def accept(self, user):
        return self._answer("agentws_conn_accept", _cstr(user, "user"))

    def refuse(self, status=403, reason=None):
        return self._answer("agentws_conn_refuse", _int(status),
                            _cstr(reason, "reason"))

    def _answer(self, func, *args):
        """On the library's thread: now (raises). Elsewhere: posted, and a
        concurrent.futures.Future says how it went."""
        if self.answered:
            raise _error(self._lib, ERR_INVALID_STATE, func,
                         "this request was answered already")
        self.answered = True
        mgr, conn = self._mgr, self.conn_id

        def answer():
            _check(mgr._lib, getattr(mgr._lib, func)(mgr._m, conn, *args),
                   func)
        if mgr._on_loop():
            return answer()
        fut = mgr.call_soon(answer)
        fut.add_done_callback(_log_failure)  # e.g. auth_timeout_ms passed
        return fut


def _log_failure(fut):
    if not fut.cancelled() and fut.exception() is not None:
        _log.warning("agentws: a deferred answer failed: %s", fut.exception())


# ------------------------------------------------------------- manager
_live = set()  # managers not closed yet: their ctypes callbacks must live


@atexit.register
def _close_all():
    # The library's thread must not call into a finalizing interpreter.
    for m in list(_live):
        try:
            m.close()
        except Exception:
            _log.exception("agentws: closing a manager at exit")


_NOTIFY = ("on_open", "on_close", "on_message", "on_client_message", "on_gap",
           "on_violation", "on_alert", "on_log")
_DECIDE = ("on_authenticate", "on_join", "on_http")


class Manager:
    """A libagentws server running on the library's own thread.

    Manager(host="127.0.0.1", port=0, *, loop=None, library=None,
            start=True, on_...=handler, **options)

    options are the agentws_config_set_* setters by name (dev_insecure=True,
    max_conns_per_user=5, stall_timeout_ms=100, http_token="t", ...) plus:
    validation="off"|"warn"|"strict"|"repair", validation_rules={rule:
    policy}, log_level="info", allowed_origins=[...], subprotocols=[...],
    jwt_keys=KeySet, jwt_hs256_secret=b"...", jwks=doc, jwks_file=path,
    jwt_pem=pem. A bad value raises AgentwsError (ERR_OUT_OF_RANGE, ...).

    Handlers:
      on_open(conn_id)                    on_close(conn_id, code, reason)
      on_client_message(conn_id, user_id, message_dict)
      on_message(conn_id, str|bytes)      (raw mode; raising closes 1011)
      on_gap(conn_id, stream, first, last)
      on_violation(Violation)             on_alert(Alert)
      on_log(level_name, line)            (e.g. agentws.log_to_logging)
      on_authenticate(Request) -> user id | None   (see Request)
      on_join(conn_id, user_id, room) -> bool
      on_http(Request) -> None (404) | body | (status, content_type, body)
    """

    def __init__(self, host="127.0.0.1", port=0, *, loop=None, library=None,
                 start=True, **options):
        self._lib = lib_ = load(library)
        self._m = None
        self._loop = loop
        self._loop_ident = None  # the library's thread, once started
        self._started = False
        self._busy = []          # one entry per thread inside a C call on _m
        self._close_lock = threading.Lock()
        self._posts = {}
        self._post_ids = itertools.count(1)
        self._cfuncs = {}        # CFUNCTYPE objects: alive until stop returns
        handlers = {k: options.pop(k) for k in list(options)
                    if k.startswith("on_")}
        self.host, self.ws_path = host, options.get("ws_path", "/ws")
        cbs = self._callbacks(handlers)
        try:
            with _Config(lib_, options) as cfg:
                m = P()
                _check(lib_, lib_.agentws_manager_new_threaded(
                    C.byref(m), cfg, cbs, None),
                    "agentws_manager_new_threaded")
        finally:
            lib_.agentws_callbacks_free(cbs)
        self._m = m
        _live.add(self)
        try:
            self.port = self.listen(host, port)
            if start:
                self.start()
        except BaseException:
            self.close()  # stops and frees a loop that never ran
            raise

    # ---- lifecycle
    def start(self):
        """Starts the library's thread (the constructor does, unless
        start=False: then handlers can refer to the manager before any
        client is served; connections wait in the listen backlog)."""
        # From here on every callback runs on the library's thread (the
        # ones before, e.g. on_log in new_threaded, ran on this one).
        self._started = True
        try:
            _check(self._lib, self._lib.agentws_manager_start(self._m),
                   "agentws_manager_start")
        except BaseException:
            self._started = False
            raise

    def listen(self, host="127.0.0.1", port=0):
        """Another listening address (e.g. "::1"), before start() only.
        Returns the port bound."""
        bound = C.c_int(0)
        _check(self._lib, self._lib.agentws_manager_listen(
            self._m, _cstr(host, "host"), port, C.byref(bound)),
            "agentws_manager_listen")
        return bound.value

    @property
    def url(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}{self.ws_path}"

    @property
    def closed(self):
        return self._m is None

    def close(self):
        """Graceful stop: every client gets close 1001, queues drain (up to
        close_timeout_ms), the library's thread ends; then the manager is
        freed and the handlers released. Thread-safe, idempotent; not from
        a handler (the library's thread cannot join itself)."""
        with self._close_lock:
            m = self._m
            if m is None:
                return
            _check(self._lib, self._lib.agentws_manager_stop(m),
                   "agentws_manager_stop")
            # Emits that raced with stop got ERR_INVALID_STATE; wait for any
            # still inside a C call before the memory goes.
            self._m = None
            while self._busy:
                time.sleep(0.001)
            self._lib.agentws_manager_free(m)
            for key, (_, _, _, fut) in list(self._posts.items()):
                self._posts.pop(key, None)
                fut.cancel()
            self._cfuncs.clear()
            _live.discard(self)

    async def aclose(self):
        """close() without blocking the event loop (clients in the same loop
        can answer the close handshake meanwhile)."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()

    # ---- threads
    def _on_loop(self):
        return threading.get_ident() == self._loop_ident

    def _call(self, fn, *args):
        """A thread-safe C call on the manager, safe against close()."""
        busy = self._busy
        busy.append(None)
        try:
            m = self._m
            if m is None:
                raise _error(self._lib, ERR_INVALID_STATE, fn.__name__,
                             "the manager is closed")
            rv = fn(m, *args)
        finally:
            busy.pop()
        if rv:
            raise _error(self._lib, rv, fn.__name__)

    def call_soon(self, fn, *args, **kwargs):
        """Runs fn(*args, **kwargs) on the library's thread soon
        (agentws_manager_post); calls from one thread run in order. Returns
        a concurrent.futures.Future of its result. Thread-safe."""
        fut = concurrent.futures.Future()
        key = next(self._post_ids)
        self._posts[key] = (fn, args, kwargs, fut)
        try:
            self._call(self._lib.agentws_manager_post, self._cfuncs["post"],
                       key)
        except BaseException:
            self._posts.pop(key, None)
            raise
        return fut

    async def run(self, fn, *args, **kwargs):
        """await fn(*args, **kwargs) run on the library's thread."""
        return await asyncio.wrap_future(self.call_soon(fn, *args, **kwargs))

    # ---- emitting: thread-safe, returns at once (the event is copied and
    # queued). Give exactly one of user= or room=. data, args and result
    # are JSON: str/bytes as JSON text, anything else serialized (data is
    # an object whose members join the event's "data"). Failures raise
    # AgentwsError: ERR_VALIDATION (strict), ERR_INVALID_JSON, ...
    def _target(self, user, room):
        if (user is None) == (room is None):
            raise TypeError("give exactly one of user= or room=")
        if room is None:
            return TARGET_USER, _cstr(user, "user")
        return TARGET_ROOM, _cstr(room, "room")

    def agent_started(self, run_id, agent, *, user=None, room=None,
                      data=None):
        """A run starts (data e.g. {"thread_id": ..., "input": ...})."""
        lib_ = self._lib
        self._call(lib_.agentws_emit_agent_started, *self._target(user, room),
                   _cstr(run_id, "run_id"), _cstr(agent, "agent"),
                   _json(data, "data"))

    def agent_thinking(self, run_id, text, *, user=None, room=None,
                       data=None):
        """A delta of the run's thinking text (str; NUL is fine)."""
        lib_ = self._lib
        text = _buf(text)
        self._call(lib_.agentws_emit_agent_thinking,
                   *self._target(user, room), _cstr(run_id, "run_id"),
                   text, len(text), _json(data, "data"))

    def tool_executing(self, run_id, tool, tool_call_id, args=None, *,
                       user=None, room=None):
        """A tool call begins; args any JSON value."""
        lib_ = self._lib
        self._call(lib_.agentws_emit_tool_executing,
                   *self._target(user, room), _cstr(run_id, "run_id"),
                   _cstr(tool, "tool"),
                   _cstr(tool_call_id, "tool_call_id"),
                   _json(args, "args"))

    def tool_completed(self, run_id, tool, tool_call_id, ok=True,
                       duration_ms=0, result=None, *, user=None, room=None):
        """The result of an announced tool call."""
        lib_ = self._lib
        self._call(lib_.agentws_emit_tool_completed,
                   *self._target(user, room), _cstr(run_id, "run_id"),
                   _cstr(tool, "tool"),
                   _cstr(tool_call_id, "tool_call_id"),
                   1 if ok else 0, _int(duration_ms),
                   _json(result, "result"))

    def agent_completed(self, run_id, duration_ms=0, result=None, *,
                        user=None, room=None, data=None):
        """The run's end; result any JSON value."""
        lib_ = self._lib
        self._call(lib_.agentws_emit_agent_completed,
                   *self._target(user, room), _cstr(run_id, "run_id"),
                   _int(duration_ms), _json(result, "result"),
                   _json(data, "data"))

    def agent_error(self, run_id, code, message, severity="error",
                    retryable=False, *, user=None, room=None, data=None):
        """The run failed; severity info, warning, error or fatal."""
        lib_ = self._lib
        self._call(lib_.agentws_emit_agent_error, *self._target(user, room),
                   _cstr(run_id, "run_id"), _cstr(code, "code"),
                   _cstr(message, "message"),
                   _cstr(severity, "severity"), 1 if retryable else 0,
                   _json(data, "data"))

    def custom(self, type, data=None, *, user=None, room=None, run_id=None):
        """A host-defined event type ([a-z][a-z0-9_.-]*, not agent_/tool_)."""
        lib_ = self._lib
        self._call(lib_.agentws_emit_custom, *self._target(user, room),
                   _cstr(type, "type"), _cstr(run_id, "run_id"),
                   _json(data, "data"))

    # ---- other thread-safe calls
    def set_jwt_keys(self, keys):
        """Key rotation on the running manager (KeySet or None)."""
        self._call(self._lib.agentws_manager_set_jwt_keys,
                   keys._ptr if keys is not None else None)

    def queued_events(self):
        """Events emitted and not yet taken by the library's thread: a
        producer that must not outrun it can wait while this is high."""
        return self._lib.agentws_manager_get_queued_events(self._m)

    def stats(self):
        """Every counter by its agentws_stat_name, and per histogram
        <name>_count, <name>_sum_ns and <name>_p50_ns ... _p999_ns."""
        lib_, st = self._lib, P()
        _check(lib_, lib_.agentws_stats_new(C.byref(st)), "agentws_stats_new")
        try:
            self._call(lib_.agentws_manager_get_stats, st)
            out = {name: lib_.agentws_stats_get(st, i)
                   for i, name in enumerate(_names(lib_, "agentws_stat_name"))}
            ns = C.c_uint64()
            for h, name in enumerate(_names(lib_, "agentws_hist_name")):
                out[f"{name}_count"] = lib_.agentws_stats_hist_count(st, h)
                out[f"{name}_sum_ns"] = lib_.agentws_stats_hist_sum_ns(st, h)
                for label, q in QUANTILES.items():
                    _check(lib_, lib_.agentws_stats_hist_quantile(
                        st, h, q, C.byref(ns)), "agentws_stats_hist_quantile")
                    out[f"{name}_{label}_ns"] = ns.value
            return out
        finally:
            lib_.agentws_stats_free(st)

    # ---- the library's thread only (handlers, call_soon)
    def _c(self, func, *args):
        """A call of the library's thread: runs only there (else
        ERR_WRONG_THREAD, which the C side would not catch)."""
        if not self._on_loop():
            raise _error(self._lib, ERR_WRONG_THREAD, func,
                         "call it from a handler or through call_soon()")
        return _check(self._lib, getattr(self._lib, func)(self._m, *args),
                      func)

    def send(self, conn_id, data):
        """A text (str) or binary (bytes) message to one connection."""
        kind = MSG_TEXT if isinstance(data, str) else MSG_BINARY
        data = _buf(data)
        self._c("agentws_conn_send", conn_id, kind, data, len(data))

    def close_connection(self, conn_id, code=CLOSE_NORMAL, reason=""):
        reason = _buf(reason)
        self._c("agentws_conn_close", conn_id, code, reason, len(reason))

    def connection(self, conn_id):
        """ConnectionInfo of an open connection."""
        s, t, info = C.c_char_p(), C.c_int64(), {}
        for key in ("user", "remote_address", "subprotocol"):
            self._c(f"agentws_conn_get_{key}", conn_id, C.byref(s))
            info[key] = _text(s.value)
        for key, func in (("connected_at_ms", "connected_at"),
                          ("token_exp", "token_exp")):
            self._c(f"agentws_conn_get_{func}", conn_id, C.byref(t))
            info[key] = t.value
        return ConnectionInfo(**info)

    def user_connections(self, user_id):
        """Ids of the user's open connections."""
        uid, cap, count = _cstr(user_id, "user_id"), 16, C.c_size_t()
        while True:
            ids = (C.c_uint64 * cap)()
            self._c("agentws_user_list_connections", uid, ids, cap,
                    C.byref(count))
            if count.value <= cap:
                return list(ids[:count.value])
            cap = count.value

    def disconnect_user(self, user_id, code=4000, reason=""):
        """Revocation: closes every connection of the user; returns how
        many."""
        reason, n = _buf(reason), C.c_size_t()
        self._c("agentws_user_disconnect", _cstr(user_id, "user_id"), code,
                reason, len(reason), C.byref(n))
        return n.value

    def room_add(self, conn_id, room):
        self._c("agentws_room_add", conn_id, _cstr(room, "room"))

    def room_remove(self, conn_id, room):
        self._c("agentws_room_remove", conn_id, _cstr(room, "room"))

    def in_room(self, conn_id, room):
        return self._c("agentws_conn_in_room", conn_id,
                       _cstr(room, "room")) == 1

    def num_connections(self):
        """Open connections (HTTP and WebSocket)."""
        return self._c("agentws_manager_get_num_connections")

    def adopt(self, sock, data=b""):
        """Takes over an accepted socket whose first |data| bytes (the start
        of the HTTP request) were read already; returns the connection id.
        The socket is detached: the library closes it."""
        conn, data = C.c_uint64(), bytes(data)
        self._c("agentws_manager_adopt", sock.fileno(), data, len(data),
                C.byref(conn))
        sock.detach()
        return conn.value

    # ---- handlers -> ctypes callbacks
    def _callbacks(self, handlers):
        lib_ = self._lib
        unknown = set(handlers) - set(_NOTIFY) - set(_DECIDE)
        if unknown:
            raise TypeError(f"unknown handler(s): {', '.join(sorted(unknown))}")
        for name in _DECIDE:
            if inspect.iscoroutinefunction(handlers.get(name)):
                raise TypeError(f"{name} answers on the library's thread: "
                                "give a plain function (see Request.defer)")
        cbs = P()
        _check(lib_, lib_.agentws_callbacks_new(C.byref(cbs)),
               "agentws_callbacks_new")
        self._cfuncs["post"] = CB["post"](self._guard("post", None, self._run_post))
        for name, fn in handlers.items():
            if fn is None:
                continue
            make, default = getattr(self, "_tramp_" + name)(fn)
            cfunc = CB[name](self._guard(name, default, make))
            self._cfuncs[name] = cfunc
            getattr(lib_, "agentws_callbacks_set_" + name)(cbs, cfunc)
        return cbs

    def _guard(self, name, default, fn):
        """Every C -> Python entry: notes the library's thread (so loop-only
        calls know where they are), and logs what the handler raises
        instead of letting it reach C."""
        def entry(*args):
            if self._started:
                self._loop_ident = threading.get_ident()
            try:
                return fn(*args)
            except BaseException:
                _log.exception("agentws: %s handler raised", name)
                return default
        return entry

    def _notify(self, name, fn):
        """A notification handler, called here or on the asyncio loop."""
        loop = self._loop
        if loop is None:
            return fn

        def run(*args):
            try:
                res = fn(*args)
                if inspect.isawaitable(res):
                    loop.create_task(_logged(name, res))
            except BaseException:
                _log.exception("agentws: %s handler raised", name)

        def deliver(*args):
            if loop.is_closed():  # e.g. closing at exit: nobody to tell
                _log.debug("agentws: %s after the asyncio loop closed", name)
            else:
                loop.call_soon_threadsafe(run, *args)
        return deliver

    def _run_post(self, _m, key):
        fn, args, kwargs, fut = self._posts.pop(key)
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:
            fut.set_exception(e)

    def _tramp_on_open(self, fn):
        call = self._notify("on_open", fn)
        return (lambda _m, conn, _ud: call(conn)), None

    def _tramp_on_close(self, fn):
        call = self._notify("on_close", fn)

        def cb(_m, conn, code, reason, length, _ud):
            call(conn, code, _text(C.string_at(reason, length)) if length
                 else "")
        return cb, None

    def _tramp_on_message(self, fn):
        call = self._notify("on_message", fn)

        def cb(_m, conn, kind, data, length, _ud):
            payload = C.string_at(data, length) if length else b""
            call(conn, payload.decode() if kind == MSG_TEXT else payload)
            return 0
        return cb, 1  # raised: the library closes with 1011

    def _tramp_on_client_message(self, fn):
        call = self._notify("on_client_message", fn)

        def cb(_m, conn, user, _type, msg, length, _ud):
            call(conn, _text(user), json.loads(C.string_at(msg, length)))
        return cb, None

    def _tramp_on_gap(self, fn):
        call = self._notify("on_gap", fn)
        return (lambda _m, conn, stream, first, last, _ud:
                call(conn, _text(stream), first, last)), None

    def _tramp_on_violation(self, fn):
        call, lib_ = self._notify("on_violation", fn), self._lib

        def cb(_m, rule, outcome, run_id, target, target_id, message, _ud):
            call(Violation(_text(lib_.agentws_rule_name(rule)),
                           _text(lib_.agentws_outcome_name(outcome)),
                           _text(run_id),
                           "room" if target == TARGET_ROOM else "user",
                           _text(target_id), _text(message)))
        return cb, None

    def _tramp_on_alert(self, fn):
        call, lib_ = self._notify("on_alert", fn), self._lib

        def cb(_m, a, _ud):
            call(Alert(
                _text(lib_.agentws_alert_rule_name(lib_.agentws_alert_get_rule(a))),
                _text(lib_.agentws_severity_name(
                    lib_.agentws_alert_get_severity(a))),
                bool(lib_.agentws_alert_is_firing(a)),
                lib_.agentws_alert_get_conn(a),
                _text(lib_.agentws_alert_get_target(a)),
                _text(lib_.agentws_alert_get_run(a)),
                _text(lib_.agentws_alert_get_tool_call(a)),
                lib_.agentws_alert_get_value(a),
                lib_.agentws_alert_get_threshold(a),
                _text(lib_.agentws_alert_get_message(a))))
        return cb, None

    def _tramp_on_log(self, fn):
        call, lib_ = self._notify("on_log", fn), self._lib
        return (lambda _m, level, msg, _ud:
                call(_text(lib_.agentws_log_level_name(level)), _text(msg))), None

    def _tramp_on_authenticate(self, fn):
        def cb(_m, conn, ptr, _ud):
            req = Request(self, conn, ptr)
            try:
                user = fn(req)
                if not (req.answered or req.deferred):
                    if isinstance(user, str):
                        req.accept(user)
                    else:
                        req.refuse(403, "forbidden")
            finally:
                req._in_hook = False
            return 0
        return cb, 1  # raised: 500

    def _tramp_on_join(self, fn):
        return (lambda _m, conn, user, room, _ud:
                0 if fn(conn, _text(user), _text(room)) else 1), 1

    def _tramp_on_http(self, fn):
        lib_ = self._lib

        def cb(_m, conn, ptr, _ud):
            req = Request(self, conn, ptr)
            try:
                res = fn(req)
            finally:
                req._in_hook = False
            if res is None:
                return 1  # 404
            status, ctype, body = (res if isinstance(res, tuple)
                                   else (200, None, res))
            if ctype is None and isinstance(body, str):
                ctype = "text/plain; charset=utf-8"
            body = _buf(body)
            _check(lib_, lib_.agentws_http_respond(
                self._m, conn, status, _cstr(ctype, "content_type"),
                body, len(body)), "agentws_http_respond")
            return 0
        return cb, 1


async def _logged(name, awaitable):
    try:
        await awaitable
    except BaseException:
        _log.exception("agentws: %s handler raised", name)


_name_lists = {}


def _names(lib_, func):
    """Names 0, 1, ... until |func| gives NULL (stats, histograms); the
    numbers are never reused, so a newer library only adds names."""
    key = (id(lib_), func)
    names = _name_lists.get(key)
    if names is None:
        names = []
        while (n := getattr(lib_, func)(len(names))) is not None:
            names.append(n.decode())
        _name_lists[key] = names
    return names


_KEY_OPTIONS = {"jwt_hs256_secret": "add_secret", "jwks": "add_jwks",
                "jwks_file": "add_jwks_file", "jwt_pem": "add_pem"}


class _Config:
    """An agentws_config built from keyword options, freed on exit."""

    def __init__(self, lib_, options):
        self._lib, self.ptr, self._keys = lib_, P(), None
        _check(lib_, lib_.agentws_config_new(C.byref(self.ptr)),
               "agentws_config_new")
        try:
            for key, value in options.items():
                if key not in _KEY_OPTIONS:
                    self._set(key, value)
            self._set_keys({k: v for k, v in options.items()
                            if k in _KEY_OPTIONS}, "jwt_keys" in options)
        except BaseException:
            self._free()
            raise

    def __enter__(self):
        return self.ptr

    def __exit__(self, *exc):
        self._free()

    def _free(self):
        if self._keys is not None:
            self._keys.close()
        self._lib.agentws_config_free(self.ptr)

    def _setter(self, func, *args):
        _check(self._lib, getattr(self._lib, func)(self.ptr, *args), func)

    def _set_keys(self, options, have_keyset):
        """jwt_hs256_secret=..., jwks=..., jwks_file=..., jwt_pem=... (each
        one value or a list) make one key set: a set handed to a config is
        frozen, so it is handed over once, complete."""
        if not options:
            return
        if have_keyset:
            raise TypeError("give jwt_keys or the key options, not both")
        self._keys = KeySet(library=self._lib)
        for key, value in options.items():
            for item in value if isinstance(value, (list, tuple)) else [value]:
                getattr(self._keys, _KEY_OPTIONS[key])(item)
        self._setter("agentws_config_set_jwt_keys", self._keys._ptr)

    def _set(self, key, value):
        if key == "validation":
            self._setter("agentws_config_set_validation", _policy(value))
        elif key == "validation_rules":
            for rule, policy in value.items():
                self._setter("agentws_config_set_validation_rule",
                             _named(dict(zip(RULES, itertools.count())),
                                    rule, "rule"), _policy(policy))
        elif key == "log_level":
            self._setter("agentws_config_set_log_level",
                         _named(LOG_LEVELS, value, "log_level"))
        elif key in ("allowed_origins", "subprotocols"):
            func = ("agentws_config_add_allowed_origin" if key[0] == "a"
                    else "agentws_config_add_subprotocol")
            for item in value:
                self._setter(func, _cstr(item, key))
        elif key == "jwt_keys":
            self._setter("agentws_config_set_jwt_keys",
                         value._ptr if value is not None else None)
        else:
            func = f"agentws_config_set_{key}"
            if func not in FUNCTIONS:
                raise TypeError(f"unknown option {key!r}")
            argtype = FUNCTIONS[func][1][1]
            self._setter(func, _cstr(value, key) if argtype is S
                         else _int(value))


def _policy(value):
    return _named(VALIDATION, value, "validation policy")


def _named(table, value, what):
    """A name of |table| or the number itself."""
    if not isinstance(value, str):
        return _int(value)
    if value not in table:
        raise ValueError(f"unknown {what} {value!r} (one of "
                         f"{', '.join(table)})")
    return table[value]
