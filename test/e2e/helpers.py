"""Helpers for the agentws-demo end-to-end tests.

Everything here talks to 127.0.0.1 only. The raw-socket client builds RFC 6455
frames by hand so tests control every byte (masking, RSV bits, opcodes, lengths)
and reads the server's HTTP responses and frames without any library in between.
"""

import asyncio
import base64
import hashlib
import os
import select
import shlex
import socket
import struct
import time
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence, Tuple

import websockets

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOL = "agentws.v1"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def timeout_scale() -> float:
    """AGENTWS_TIMEOUT_SCALE (default 1): multiplies every timeout, e.g. 10 under valgrind."""
    raw = os.environ.get("AGENTWS_TIMEOUT_SCALE", "").strip()
    try:
        scale = float(raw) if raw else 1.0
    except ValueError:
        scale = 1.0
    return max(scale, 1.0)


def t(seconds: float) -> float:
    """A timeout of |seconds| scaled by AGENTWS_TIMEOUT_SCALE."""
    return seconds * timeout_scale()


def demo_path() -> Path:
    """The binary under test: $AGENTWS_DEMO, else build/examples/agentws-demo."""
    env = os.environ.get("AGENTWS_DEMO", "").strip()
    if env:
        return Path(env).resolve()
    return REPO_ROOT / "build" / "examples" / "agentws-demo"


def wrapper_argv() -> List[str]:
    """$AGENTWS_DEMO_WRAPPER split like a shell would (e.g. a valgrind command line)."""
    return shlex.split(os.environ.get("AGENTWS_DEMO_WRAPPER", ""))


def under_wrapper() -> bool:
    return bool(wrapper_argv())


def run_async(coro, timeout: float):
    """Runs |coro| on a fresh event loop; fails the test if it takes longer than |timeout|."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def ws_url(port: int, path: str = "/ws") -> str:
    return f"ws://{HOST}:{port}{path}"


def ws_connect(port: int, path: str = "/ws", **kwargs):
    """websockets.connect with the project's defaults and bounded timeouts."""
    kwargs.setdefault("subprotocols", [SUBPROTOCOL])
    kwargs.setdefault("open_timeout", t(10))
    kwargs.setdefault("close_timeout", t(5))
    kwargs.setdefault("max_size", 4 * 1024 * 1024)
    kwargs.setdefault("ping_interval", None)
    kwargs.setdefault("compression", None)
    return websockets.connect(ws_url(port, path), **kwargs)


# --------------------------------------------------------------------------- frames


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    mask_key: Optional[bytes] = None,
) -> bytes:
    """One RFC 6455 frame. Clients must mask (mask=True); mask=False builds a protocol error.

    |rsv| is the 3-bit RSV1..RSV3 field (4 = RSV1). Lengths use the shortest encoding.
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + apply_mask(payload, key)


def apply_mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    n = len(payload)
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")


def close_payload(code: Optional[int] = None, reason: bytes = b"") -> bytes:
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


class Frame(NamedTuple):
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    payload: bytes

    @property
    def close_code(self) -> Optional[int]:
        """Status code of a close frame; 1005 (no status received) when it has none."""
        assert self.opcode == OP_CLOSE, self
        if len(self.payload) < 2:
            return 1005
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self) -> bytes:
        assert self.opcode == OP_CLOSE, self
        return self.payload[2:]

    def describe(self) -> str:
        if self.opcode == OP_CLOSE:
            return f"close(code={self.close_code}, reason={self.close_reason!r})"
        body = self.payload if len(self.payload) <= 40 else self.payload[:40] + b"..."
        return f"frame(op=0x{self.opcode:x}, fin={self.fin}, rsv={self.rsv}, len={len(self.payload)}, {body!r})"


def parse_frame(buf, pos: int = 0) -> Optional[Tuple[Frame, int]]:
    """Parses one complete frame at buf[pos:]; returns (frame, end offset) or None if incomplete."""
    avail = len(buf) - pos
    if avail < 2:
        return None
    b0, b1 = buf[pos], buf[pos + 1]
    n = b1 & 0x7F
    hdr = 2
    if n == 126:
        if avail < 4:
            return None
        n = struct.unpack_from("!H", buf, pos + 2)[0]
        hdr = 4
    elif n == 127:
        if avail < 10:
            return None
        n = struct.unpack_from("!Q", buf, pos + 2)[0]
        hdr = 10
    masked = bool(b1 & 0x80)
    key = b""
    if masked:
        if avail < hdr + 4:
            return None
        key = bytes(buf[pos + hdr : pos + hdr + 4])
        hdr += 4
    if avail < hdr + n:
        return None
    payload = bytes(buf[pos + hdr : pos + hdr + n])
    if masked:
        payload = apply_mask(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0xF, masked, payload), pos + hdr + n


# --------------------------------------------------------------------------- HTTP


def make_key() -> str:
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + WS_GUID).digest()).decode("ascii")


def upgrade_request(
    path: str = "/ws",
    *,
    key: Optional[str] = None,
    protocols: Optional[str] = SUBPROTOCOL,
    origin: Optional[str] = None,
    version: Optional[str] = "13",
    method: str = "GET",
    http_version: str = "HTTP/1.1",
    upgrade: Optional[str] = "websocket",
    connection: Optional[str] = "Upgrade",
    extra_headers: Sequence[Tuple[str, str]] = (),
    host: Optional[str] = None,
) -> bytes:
    """A WebSocket upgrade request head. Pass None for a header to leave it out."""
    lines = [f"{method} {path} {http_version}"]
    lines.append(f"Host: {host or HOST}")
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key is None:
        key = make_key()
    if key != "":
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    if protocols is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    for name, value in extra_headers:
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def request_key(request: bytes) -> Optional[str]:
    for line in request.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-key":
            return value.strip()
    return None


class HttpResponse(NamedTuple):
    status: int
    reason: str
    version: str
    headers: List[Tuple[str, str]]
    raw_head: bytes
    body: bytes

    def header(self, name: str) -> Optional[str]:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name: str) -> List[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __str__(self) -> str:
        return (self.raw_head + self.body[:300]).decode("latin-1", "replace")


def parse_http_head(raw_head: bytes) -> HttpResponse:
    text = raw_head.decode("latin-1")
    lines = text.split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    assert len(parts) >= 2 and parts[0].startswith("HTTP/"), f"bad status line {status_line!r}"
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        assert sep, f"bad header line {line!r} in {text!r}"
        headers.append((name.strip(), value.strip()))
    return HttpResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", parts[0], headers, raw_head, b"")


class ConnectionEnded(Exception):
    """The peer closed the TCP connection (EOF or reset) while we expected more."""


# --------------------------------------------------------------------------- raw client


class RawConn:
    """A blocking TCP client with exact control over the bytes sent and a frame reader."""

    def __init__(self, port: int, host: str = HOST, timeout: Optional[float] = None, rcvbuf: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout or t(5))
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.rpos = 0  # frames before this offset of buf are consumed
        self.eof = False
        self.reset = False
        self.port = port

    # -- plumbing
    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, opcode: int, payload: bytes = b"", **kw) -> None:
        self.sock.sendall(build_frame(opcode, payload, **kw))

    def send_close(self, code: Optional[int] = 1000, reason: bytes = b"") -> None:
        self.send_frame(OP_CLOSE, close_payload(code, reason))

    def _fill(self, deadline: float) -> None:
        """Reads at least one byte into buf, or raises ConnectionEnded / TimeoutError."""
        if self.eof:
            raise ConnectionEnded("connection already closed by peer")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out waiting for data from the server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(262144)
        except socket.timeout:
            raise TimeoutError("timed out waiting for data from the server") from None
        except ConnectionResetError:
            self.eof = True
            self.reset = True
            raise ConnectionEnded("connection reset by peer") from None
        if not data:
            self.eof = True
            raise ConnectionEnded("connection closed by peer (EOF)")
        self.buf += data

    # -- HTTP
    def read_http_response(self, timeout: Optional[float] = None, read_body: bool = True) -> HttpResponse:
        """Reads a response head (and a Content-Length body); leftover bytes stay buffered."""
        deadline = time.monotonic() + (timeout or t(5))
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > 65536:
                raise AssertionError(f"response head too long: {bytes(self.buf[:200])!r}")
            try:
                self._fill(deadline)
            except ConnectionEnded as exc:
                raise AssertionError(
                    f"server closed the connection ({exc}) before a complete response head; "
                    f"got {bytes(self.buf[:300])!r}"
                ) from None
            except TimeoutError:
                raise AssertionError(
                    f"no complete HTTP response within {timeout or t(5):.1f}s; got {bytes(self.buf[:300])!r}"
                ) from None
        end = self.buf.index(b"\r\n\r\n") + 4
        raw_head = bytes(self.buf[:end])
        del self.buf[:end]
        resp = parse_http_head(raw_head)
        body = b""
        if read_body and resp.status != 101:
            clen = resp.header("Content-Length")
            if clen is not None:
                want = int(clen)
                while len(self.buf) < want:
                    try:
                        self._fill(deadline)
                    except ConnectionEnded:
                        break
                body = bytes(self.buf[:want])
                del self.buf[:want]
        return resp._replace(body=body)

    def handshake(self, path: str = "/ws", **kw) -> HttpResponse:
        """Sends an upgrade request and asserts a correct 101 response."""
        req = upgrade_request(path, **kw)
        self.send(req)
        resp = self.read_http_response()
        check_101(resp, request_key(req))
        return resp

    # -- frames
    def recv_frame(self, timeout: Optional[float] = None) -> Frame:
        deadline = time.monotonic() + (timeout or t(5))
        while True:
            parsed = parse_frame(self.buf, self.rpos)
            if parsed is not None:
                frame, self.rpos = parsed
                if self.rpos >= 1 << 20 or self.rpos == len(self.buf):
                    del self.buf[: self.rpos]
                    self.rpos = 0
                assert not frame.masked, f"server sent a masked frame: {frame.describe()}"
                return frame
            self._fill(deadline)

    def recv_message(self, timeout: Optional[float] = None) -> Tuple[int, bytes]:
        """Reads one (possibly fragmented) data message; fails on any other frame."""
        deadline = time.monotonic() + (timeout or t(5))
        opcode = None
        parts = []
        while True:
            try:
                frame = self.recv_frame(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                raise AssertionError(f"no complete message within {timeout or t(5):.1f}s") from None
            except ConnectionEnded as exc:
                raise AssertionError(f"expected a message; the server dropped TCP ({exc})") from None
            if opcode is None:
                assert frame.opcode in (OP_TEXT, OP_BINARY), f"expected a data frame, got {frame.describe()}"
                opcode = frame.opcode
            else:
                assert frame.opcode == OP_CONT, f"expected a continuation, got {frame.describe()}"
            assert frame.rsv == 0, f"server set RSV bits: {frame.describe()}"
            parts.append(frame.payload)
            if frame.fin:
                return opcode, b"".join(parts)

    def expect_close(self, timeout: Optional[float] = None) -> Frame:
        """Reads frames until a close frame; any data or other frame before it fails the test."""
        limit = timeout or t(5)
        try:
            frame = self.recv_frame(limit)
        except TimeoutError:
            raise AssertionError(f"expected a close frame; nothing came within {limit:.1f}s") from None
        except ConnectionEnded as exc:
            raise AssertionError(f"expected a close frame; the server dropped TCP instead ({exc})") from None
        assert frame.opcode == OP_CLOSE, f"expected a close frame, got {frame.describe()}"
        return frame

    def wait_closed(self, timeout: Optional[float] = None, discard: bool = True) -> bytes:
        """Waits for EOF or reset; returns what was read meanwhile. Fails after |timeout|."""
        deadline = time.monotonic() + (timeout or t(5))
        start = len(self.buf)
        while not self.eof:
            try:
                self._fill(deadline)
            except ConnectionEnded:
                break
            except TimeoutError:
                raise AssertionError(
                    f"server did not close the TCP connection within {timeout or t(5):.1f}s"
                ) from None
            if discard and len(self.buf) > 16 * 1024 * 1024:
                del self.buf[start:]
        return bytes(self.buf[start:])

    def finish_close(self, reply: bool = True, timeout: Optional[float] = None) -> None:
        """After the server's close frame: answer it (as a client should) and require TCP close."""
        if reply:
            try:
                self.send_close(None)
            except OSError:
                pass  # the server may already have closed the socket
        self.wait_closed(timeout, discard=False)
        rest = bytes(self.buf[self.rpos :])
        assert not rest, f"bytes after the close frame: {rest[:100]!r}"


def check_101(resp: HttpResponse, key: Optional[str]) -> None:
    assert resp.status == 101, f"expected 101, got:\n{resp}"
    assert resp.header("Upgrade") and resp.header("Upgrade").lower() == "websocket", str(resp)
    conn = resp.header("Connection") or ""
    assert "upgrade" in [tok.strip().lower() for tok in conn.split(",")], str(resp)
    if key is not None:
        assert resp.header("Sec-WebSocket-Accept") == accept_for(key), str(resp)


def http_exchange(port: int, request: bytes, timeout: Optional[float] = None) -> Tuple[HttpResponse, RawConn]:
    """Sends |request| on a fresh connection and reads the response; the caller closes the RawConn."""
    conn = RawConn(port)
    conn.send(request)
    return conn.read_http_response(timeout), conn


def expect_refusal(port: int, request: bytes, status: int) -> HttpResponse:
    """Sends |request|, asserts the HTTP |status|, and that the server then closes the socket."""
    resp, conn = http_exchange(port, request)
    with conn:
        assert resp.status == status, f"expected HTTP {status}, got:\n{resp}"
        conn.wait_closed(t(5))
    return resp


def socket_readable(sock: socket.socket, timeout: float) -> bool:
    r, _, _ = select.select([sock], [], [], timeout)
    return bool(r)


# --------------------------------------------------------------------------- agent protocol
# Helpers for the agent-mode tests (test_agent_*.py): a JSON client for the agentws.v1 protocol
# and checks of the event envelope and of one simulated run of agentws-demo --mode agent.

import json as _json  # noqa: E402  (kept with the section that uses it)
import re as _re  # noqa: E402
from urllib.parse import urlencode as _urlencode  # noqa: E402

LIFECYCLE = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
# A demo run: started, thinking deltas, one tool call, thinking deltas, completed.
RUN_SHAPE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_thinking",
             "agent_completed"]
ERROR_CODES = ("too_large", "bad_json", "bad_message", "bad_field", "rate_limited")


def agent_path(user: Optional[str] = "alice", **params) -> str:
    """/ws?user=U&k=v...; params whose value is None are left out."""
    query = []
    if user is not None:
        query.append(("user", user))
    query += [(k, str(v)) for k, v in params.items() if v is not None]
    return "/ws" + ("?" + _urlencode(query) if query else "")


class AgentClient:
    """One agentws.v1 connection (websockets) that sends and receives JSON objects."""

    def __init__(self, ws, name: str):
        self.ws = ws
        self.name = name
        self.welcome: Optional[dict] = None
        self.raw: List[str] = []  # every text message received, in order

    async def send(self, msg) -> None:
        await self.ws.send(msg if isinstance(msg, (str, bytes)) else _json.dumps(msg))

    async def say(self, text: str, room: Optional[str] = None) -> None:
        msg = {"type": "user_message", "text": text}
        if room is not None:
            msg["room"] = room
        await self.send(msg)

    async def recv(self, timeout: Optional[float] = None) -> dict:
        limit = timeout or t(5)
        try:
            raw = await asyncio.wait_for(self.ws.recv(), limit)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.name}: no message within {limit:.1f}s") from None
        except websockets.ConnectionClosed as exc:
            raise AssertionError(f"{self.name}: connection closed while a message was expected ({exc})") from None
        assert isinstance(raw, str), f"{self.name}: binary message from the server: {raw[:80]!r}"
        self.raw.append(raw)
        try:
            msg = _json.loads(raw)
        except ValueError:
            raise AssertionError(f"{self.name}: not JSON: {raw[:300]!r}") from None
        assert isinstance(msg, dict) and isinstance(msg.get("type"), str), (
            f"{self.name}: not a JSON object with a string type: {raw[:300]!r}"
        )
        return msg

    async def expect(self, type_: str, timeout: Optional[float] = None) -> dict:
        """The next message, which must have type |type_|."""
        msg = await self.recv(timeout)
        assert msg["type"] == type_, f"{self.name}: expected a {type_!r} message, got {msg}"
        return msg

    async def expect_error(self, code: str, timeout: Optional[float] = None) -> dict:
        msg = await self.expect("error", timeout)
        assert msg.get("code") == code, f"{self.name}: expected error code {code!r}, got {msg}"
        assert isinstance(msg.get("message"), str) and msg["message"], f"{self.name}: error without a message: {msg}"
        return msg

    async def collect(self, n: int, timeout: Optional[float] = None) -> List[dict]:
        """The next |n| messages, all within |timeout| (default t(10))."""
        deadline = asyncio.get_running_loop().time() + (timeout or t(10))
        out = []
        while len(out) < n:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"{self.name}: got {len(out)} of {n} messages in time; last: {out[-1:]}")
            out.append(await self.recv(left))
        return out

    async def until(self, pred, timeout: Optional[float] = None, what: str = "the expected message") -> List[dict]:
        """Messages up to and including the first one for which pred(msg) is true."""
        limit = timeout or t(10)
        deadline = asyncio.get_running_loop().time() + limit
        out = []
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"{self.name}: {what} did not come within {limit:.1f}s; got {summarize(out)}")
            msg = await self.recv(left)
            out.append(msg)
            if pred(msg):
                return out

    async def run_events(self, timeout: Optional[float] = None) -> List[dict]:
        """Messages up to and including the next agent_completed or agent_error."""
        return await self.until(lambda m: m["type"] in ("agent_completed", "agent_error"), timeout,
                                "the end of the run")

    async def barrier(self, timeout: Optional[float] = None) -> List[dict]:
        """Sends a ping; returns every message that came before its pong."""
        await self.send({"type": "ping"})
        got = await self.until(lambda m: m["type"] == "pong", timeout, "the pong")
        return got[:-1]

    async def nothing_pending(self, timeout: Optional[float] = None) -> None:
        got = await self.barrier(timeout)
        assert got == [], f"{self.name}: unexpected messages: {summarize(got)}"

    async def close(self) -> None:
        await self.ws.close()

    def drop(self) -> None:
        """Ends the TCP connection without a close handshake (a network blip)."""
        self.ws.transport.abort()


class agent_client:
    """async with agent_client(port, "alice", epoch=E, last_seq=N) as c: ... (c.welcome is read)."""

    _count = 0

    def __init__(self, port: int, user: Optional[str] = "alice", *, welcome: bool = True, subprotocols=None,
                 **params):
        self.port = port
        self.path = agent_path(user, **params)
        self.read_welcome = welcome
        self.subprotocols = subprotocols
        agent_client._count += 1
        self.name = f"{user}#{agent_client._count}"
        self.client: Optional[AgentClient] = None

    async def __aenter__(self) -> AgentClient:
        # An unbounded receive queue: websockets otherwise stops reading after 32 unread messages, and a close
        # with more than that pending then waits for its timeout (1006) instead of the server's close frame.
        kw = {"max_queue": None}
        if self.subprotocols is not None:
            kw["subprotocols"] = self.subprotocols or None
        ws = await ws_connect(self.port, self.path, **kw)
        self.client = AgentClient(ws, self.name)
        if self.read_welcome:
            try:
                self.client.welcome = await self.client.expect("welcome")
            except BaseException:
                await ws.close()
                raise
        return self.client

    async def __aexit__(self, *exc) -> None:
        if self.client is not None:
            await self.client.ws.close()


def summarize(msgs: Sequence[dict], limit: int = 12) -> str:
    """A short description of a message list for assertion texts."""
    parts = []
    for m in msgs[:limit]:
        s = m.get("type", "?")
        if "seq" in m:
            s += f"#{m['seq']}"
        if "stream" in m:
            s += f"@{m['stream']}"
        if m.get("type") == "error":
            s += f"({m.get('code')})"
        parts.append(s)
    more = f" ... (+{len(msgs) - limit})" if len(msgs) > limit else ""
    return "[" + ", ".join(parts) + more + "]"


def check_envelope(ev: dict, stream: Optional[str] = None) -> None:
    """The common fields of an event: type, seq, ts, data, stream, run_id for lifecycle types."""
    assert isinstance(ev.get("seq"), int) and ev["seq"] >= 1, f"bad seq: {ev}"
    assert isinstance(ev.get("ts"), int), f"ts must be an integer (ms): {ev}"
    now_ms = time.time() * 1000
    assert abs(ev["ts"] - now_ms) < 600_000, f"ts {ev['ts']} is not the wall clock in ms (now {now_ms:.0f}): {ev}"
    assert isinstance(ev.get("data"), dict), f"data must be an object: {ev}"
    if stream is None:
        assert "stream" not in ev, f"an event of the user's own stream carries a stream field: {ev}"
    else:
        assert ev.get("stream") == stream, f"expected stream {stream!r}: {ev}"
    if ev["type"].startswith(("agent_", "tool_")):
        assert isinstance(ev.get("run_id"), str) and ev["run_id"], f"lifecycle event without run_id: {ev}"


def seq_step(ev: dict) -> int:
    """How far this event's seq may be past the previous one: n for a coalesced thinking event."""
    if ev.get("type") == "agent_thinking":
        n = ev.get("data", {}).get("coalesced", 1)
        assert isinstance(n, int) and n >= 1, f"bad coalesced count: {ev}"
        return n
    return 1


def check_seqs(events: Sequence[dict], first: Optional[int] = None) -> None:
    """Strictly +1 per event (+n for an event that coalesced n thinking deltas)."""
    if first is not None and events:
        assert events[0]["seq"] == first, f"first seq {events[0]['seq']}, expected {first}: {summarize(events)}"
    for prev, ev in zip(events, events[1:]):
        assert ev["seq"] == prev["seq"] + seq_step(ev), (
            f"seq {prev['seq']} -> {ev['seq']} ({ev['type']}, step allowed {seq_step(ev)}): {summarize(events, 40)}"
        )


def thinking_text(events: Sequence[dict]) -> str:
    return "".join(e["data"]["text"] for e in events if e["type"] == "agent_thinking")


def check_run(events: Sequence[dict], text: Optional[str] = None, *, stream: Optional[str] = None,
              first_seq: Optional[int] = None) -> str:
    """Asserts |events| is exactly one complete demo run (its data fields too); returns the run_id."""
    assert events, "no events"
    types = [e["type"] for e in events]
    shape = [tp for i, tp in enumerate(types) if i == 0 or tp != "agent_thinking" or types[i - 1] != tp]
    assert shape == RUN_SHAPE, f"run events out of shape: {types}"
    for ev in events:
        check_envelope(ev, stream)
    run_id = events[0]["run_id"]
    assert _re.fullmatch(r"r-[0-9]+", run_id), f"run_id {run_id!r} is not r-<n>"
    others = [e for e in events if e["run_id"] != run_id]
    assert not others, f"events of another run mixed in: {summarize(others)}"
    check_seqs(events, first_seq)
    by_type = {e["type"]: e for e in events}
    started = by_type["agent_started"]["data"]
    assert started.get("agent") == "demo-agent", f"agent_started data: {started}"
    if text is not None:
        assert started.get("input") == text, f"agent_started input {started.get('input')!r} != {text!r}"
    execing = by_type["tool_executing"]["data"]
    assert execing.get("tool") == "web_search", f"tool_executing data: {execing}"
    call = execing.get("tool_call_id")
    assert isinstance(call, str) and _re.fullmatch(r"c-[0-9]+", call), f"tool_call_id: {execing}"
    if text is not None:
        assert execing.get("args") == {"q": text}, f"tool_executing args: {execing}"
    done = by_type["tool_completed"]["data"]
    assert done.get("tool") == "web_search" and done.get("tool_call_id") == call, f"tool_completed data: {done}"
    assert done.get("ok") is True, f"tool_completed ok: {done}"
    assert isinstance(done.get("duration_ms"), int) and done["duration_ms"] >= 0, f"tool_completed: {done}"
    assert isinstance(done.get("result"), dict), f"tool_completed result: {done}"
    for ev in events:
        if ev["type"] == "agent_thinking":
            assert isinstance(ev["data"].get("text"), str) and ev["data"]["text"], f"thinking without text: {ev}"
    completed = by_type["agent_completed"]["data"]
    assert isinstance(completed.get("duration_ms"), int) and completed["duration_ms"] >= 0, f"{completed}"
    result = completed.get("result")
    assert isinstance(result, dict) and isinstance(result.get("text"), str), f"agent_completed result: {completed}"
    joined = thinking_text(events)
    assert joined.encode("utf-8") == result["text"].encode("utf-8"), (
        f"thinking deltas reassembled != agent_completed result.text\n deltas: {joined!r}\n result: {result['text']!r}"
    )
    return run_id


def check_ticks(events: Sequence[dict], n: int, first_seq: Optional[int] = None,
                stream: Optional[str] = None, pad: int = 0) -> None:
    """|events| are exactly the n demo.tick events of one "/burst n [pad]", in order."""
    assert len(events) == n, f"{len(events)} events, expected {n}: {summarize(events)}"
    for k, ev in enumerate(events):
        want = {"i": k, "pad": "x" * pad} if pad else {"i": k}
        if ev.get("type") != "demo.tick" or ev.get("data") != want:
            raise AssertionError(f"tick #{k} is {ev}")
        check_envelope(ev, stream)
        if "run_id" in ev:
            raise AssertionError(f"a tick emitted without run_id carries one: {ev}")
    check_seqs(events, first_seq)
