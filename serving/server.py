"""A small JSON-over-HTTP front for ``OnnxPolicy``, standard library only.

POST /v1/act       {"obs": [...], "deterministic": true} -> {"action": [...]}
GET  /v1/metadata  spaces, env id, version, distribution
GET  /healthz      {"status": "ok"}

One thread per connection (``ThreadingHTTPServer``); onnxruntime's ``run`` is
thread-safe and neither ``OnnxPolicy`` nor the handler keeps per-request state anywhere
shared (each request's data lives in its own handler object and locals), so answers
never mix. The sampling generator is the one shared mutable thing, and it is locked.

Hardening, each a setting of ``make_server`` (and of ``python -m serving http``):
- ``backlog``: the listen queue. socketserver's default of 5 resets connections when
  many clients connect at once.
- ``max_connections``: at most this many connections have a thread at once. A connection
  gets one when its first bytes arrive; until then it waits in a lobby watched by a single
  thread (so a flood of sockets that never send costs descriptors, not threads), and the
  oldest silent one is closed when more than ``max_waiting`` wait. A request that arrives
  while every thread is taken waits for one; meanwhile the connection that has waited
  longest on its client (idle between requests, or stuck mid-request), if for over
  ``evict_after`` seconds, is closed to make room. Requests being computed are never cut.
- ``idle_timeout``: a connection's thread ends after this long without a byte from the client.
- ``token``: requests other than GET /healthz need ``Authorization: Bearer <token>``,
  compared in constant time; binding beyond loopback without one logs a warning.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import math
import os
import select
import selectors
import socket
import stat
import sys
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping, Optional

import numpy as np

from serving.errors import InvalidObservation, NonFiniteObservation
from serving.policy import OnnxPolicy

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: ~25k float observations, far more than a control loop sends
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection (and its thread) may sit idle
DEFAULT_MAX_CONNECTIONS = 100  # threads serving connections at once
DEFAULT_BACKLOG = 1024  # listen queue; Linux caps it at net.core.somaxconn (4096 since 5.4, 128 before)
TOKEN_ENV = "KERAS_TRPO_SERVING_TOKEN"  # the bearer token when --token-file is not given
_DRAIN_FACTOR = 8  # read and drop an oversized body up to this many limits, so the client sees the 413
_INT64_DIGITS = 18  # longer JSON integers are parsed as floats (beyond float32 anyway; no 4300-digit error)
_BODY_KEYS = ("obs", "deterministic")
_REALM = 'Bearer realm="keras-trpo"'
log = logging.getLogger("serving.server")


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: Optional[dict[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON (RFC 8259), though Python's json would accept them.
    raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body contains {name}; observations must be finite numbers")


def _parse_int(digits: str) -> Any:
    # int() refuses over 4300 digits (a ValueError deep in json); a float keeps the value's
    # magnitude and a huge one becomes inf, which act() reports as out of float32's range.
    return int(digits) if len(digits) <= _INT64_DIGITS else float(digits)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    # {"obs": A, "obs": B} would silently mean B; ambiguous input is refused instead.
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body has the key {dup!r} twice")
    return body


def _jsonable(x: Any) -> Any:
    return x.tolist() if isinstance(x, np.ndarray) else (x.item() if isinstance(x, np.generic) else x)


def parse_act_body(raw: bytes) -> tuple[Any, bool]:
    """A POST /v1/act body -> ``(obs, deterministic)``, or ``_BadRequest`` (400) naming the problem.

    ``obs`` is still nested lists here; ``OnnxPolicy.act`` checks its shape and values."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_int=_parse_int,
                          object_pairs_hook=_unique_keys)
    except RecursionError:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, "body nests arrays or objects too deeply to parse") from None
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}") from None
    if not isinstance(body, dict) or "obs" not in body:
        raise _BadRequest(HTTPStatus.BAD_REQUEST, 'expected a JSON object {"obs": [...]}')
    unknown = sorted(set(body) - set(_BODY_KEYS))
    if unknown:  # a misspelt "deterministic" would otherwise silently give the default
        raise _BadRequest(HTTPStatus.BAD_REQUEST, f"unknown field(s) {unknown[:5]}; expected only {list(_BODY_KEYS)}")
    deterministic = body.get("deterministic", True)
    if not isinstance(deterministic, bool):
        raise _BadRequest(HTTPStatus.BAD_REQUEST, '"deterministic" must be true or false')
    return body["obs"], deterministic


# ---------------------------------------------------------------------------- tokens
def check_token(token: str, source: str) -> str:
    """``token`` if it can be sent in an ``Authorization: Bearer`` header; else ``ValueError``
    naming ``source`` (never the token)."""
    if not token:
        raise ValueError(f"the token from {source} is empty")
    if any(not 0x21 <= ord(c) <= 0x7E for c in token):
        raise ValueError(f"the token from {source} has spaces, control or non-ASCII characters; "
                         "use printable ASCII, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return token


def load_token(token_file: Optional[str] = None,
               environ: Optional[Mapping[str, str]] = None) -> tuple[Optional[str], Optional[str]]:
    """The bearer token and where it came from: ``token_file`` (its first line), else the
    ``KERAS_TRPO_SERVING_TOKEN`` environment variable, else ``(None, None)``.

    Raises ``ValueError`` for an unreadable file or an unusable token. A file other users can
    read is used but logged as a warning."""
    environ = os.environ if environ is None else environ
    if token_file is not None:
        source = f"--token-file {token_file}"
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().strip()
            mode = os.stat(token_file).st_mode
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read the token file {token_file}: {getattr(e, 'strerror', None) or e}") from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("token file %s is readable by other users (mode %o); chmod 600 it", token_file,
                        stat.S_IMODE(mode))
        return check_token(token, source), source
    if environ.get(TOKEN_ENV) is not None:
        return check_token(environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"), f"${TOKEN_ENV}"
    return None, None


def _digest(token: bytes) -> bytes:
    # Comparing fixed-length digests: compare_digest on the raw strings would leak the length.
    return hashlib.sha256(token).digest()


def exposure_warning(host: str, token_set: bool) -> Optional[str]:
    """The warning to log when a server bound to the IP address ``host`` (``server_address[0]``)
    is reachable beyond this machine with no token, else None."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:  # not an address: assume the worst
        loopback = False
    if token_set or loopback:
        return None
    return (f"serving on {host} without a token: anyone who can reach this address can query the policy. "
            f"Pass --token-file FILE or set {TOKEN_ENV} (clients then send 'Authorization: Bearer <token>'), "
            "or bind 127.0.0.1.")


# ---------------------------------------------------------------------------- connections
IDLE, CLIENT_IO, BUSY = "idle", "client_io", "busy"  # what a connection's thread is doing, see _Connection


def _readable(socks: list[socket.socket]) -> set[int]:
    """The file descriptors among ``socks`` with a byte (or EOF) to read now, without waiting."""
    if not socks:
        return set()
    if hasattr(select, "poll"):  # select() cannot take descriptors over 1023
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        return {fd for fd, _ in poller.poll(0)}
    return {s.fileno() for s in select.select(socks, [], [], 0)[0]}


def _hung_up(sock: socket.socket) -> bool:
    """Whether a readable socket's client has closed it (EOF or reset) without sending a byte."""
    try:
        return sock.recv(1, socket.MSG_PEEK | getattr(socket, "MSG_DONTWAIT", 0)) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _default_max_waiting(max_connections: int) -> int:
    """How many connections may wait without a thread: 1000, fewer under a low open-file limit
    (each is a descriptor, and accept() failing with EMFILE would spin the accepting thread)."""
    try:
        import resource  # POSIX only
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return 1000
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(16, min(1000, (soft - 64) // 2 - max_connections))


class _Connection:
    """A connection that has a thread, as the server sees it when it needs room.

    IDLE: waiting for the first byte of a request (kept alive between requests);
    CLIENT_IO: mid-request, blocked on the client (reading headers or body, writing the answer);
    BUSY: computing an answer, never closed for room. ``since``: when the state began."""

    __slots__ = ("sock", "state", "since", "evicted")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.state, self.since = IDLE, time.monotonic()
        self.evicted = False

    def evict(self) -> None:
        self.evicted = True
        try:  # wakes the thread blocked reading (or writing) this socket; it then ends
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Lobby:
    """Accepted connections that have not sent a byte yet. One thread watches them all
    (epoll on Linux) and passes each to ``on_bytes(sock, addr)`` when its first bytes come;
    so a socket that never sends costs a descriptor, never a thread. A silent one is closed
    after ``idle_timeout``, and the oldest when more than ``capacity`` wait.

    ``tick()`` runs on every turn of the loop; it returns how soon it wants the next one."""

    def __init__(self, capacity: int, idle_timeout: float, on_bytes: Callable[[socket.socket, Any], None],
                 tick: Callable[[], Optional[float]]):
        self.capacity, self.idle_timeout = capacity, idle_timeout
        self._on_bytes, self._tick = on_bytes, tick
        self.dropped = 0  # silent connections closed (timed out, or the oldest when over capacity)
        self._lock = threading.Lock()
        self._incoming: list[tuple[socket.socket, Any, float]] = []  # from the accepting thread
        self._silent: dict[socket.socket, float] = {}  # the loop's own, oldest first
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="serving-lobby", daemon=True)
        self._thread.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._incoming) + len(self._silent)

    def add(self, sock: socket.socket, addr: Any) -> None:
        with self._lock:
            self._incoming.append((sock, addr, time.monotonic()))
        self.wake()

    def wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the buffer is full (a wake-up is pending anyway) or the lobby is closed
            pass

    def close(self) -> None:
        """Stop the loop and close every connection still waiting."""
        self._stop = True
        self.wake()
        self._thread.join(10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stop:
                now = time.monotonic()
                with self._lock:
                    self._take_incoming()
                    spoke = self._sweep(now)
                for sock, addr in spoke:
                    self._on_bytes(sock, addr)
                timeout = self._tick()
                if self._silent:  # the oldest one's deadline
                    expiry = max(0.0, next(iter(self._silent.values())) + self.idle_timeout - now)
                    timeout = expiry if timeout is None else min(timeout, expiry)
                for sock, addr in self._wait(1.0 if timeout is None else timeout):
                    self._on_bytes(sock, addr)
        except Exception:  # noqa: BLE001 - a bug here must not pass silently
            log.exception("the connection lobby stopped")
        finally:
            with self._lock:
                self._take_incoming()
                for sock in list(self._silent):
                    self._drop(sock)
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _take_incoming(self) -> None:
        for sock, addr, since in self._incoming:
            self._selector.register(sock, selectors.EVENT_READ, addr)
            self._silent[sock] = since
        self._incoming = []

    def _sweep(self, now: float) -> list[tuple[socket.socket, Any]]:
        """Close the oldest silent connections beyond ``capacity`` and those silent for
        ``idle_timeout``. Returns the ones among them whose first bytes came meanwhile."""
        over = len(self._silent) - self.capacity
        doomed = []
        for sock, since in self._silent.items():  # oldest first
            if len(doomed) >= over and now - since < self.idle_timeout:
                break
            doomed.append(sock)
        spoke = _readable(doomed)
        return [pair for pair in (self._release(sock, sock.fileno() in spoke) for sock in doomed) if pair]

    def _wait(self, timeout: float) -> list[tuple[socket.socket, Any]]:
        """The silent connections whose first bytes come within ``timeout`` seconds."""
        events = self._selector.select(timeout)
        with self._lock:
            spoke = []
            for key, _ in events:
                if key.fileobj is self._wake_r:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                elif key.fileobj in self._silent:
                    spoke.append(self._release(key.fileobj, True))
        return [pair for pair in spoke if pair]

    def _release(self, sock: socket.socket, readable: bool) -> Optional[tuple[socket.socket, Any]]:
        """Take ``sock`` out of the lobby: ``(sock, addr)`` if it has a request to read, else
        (silent, or its client hung up without a word) closed and None."""
        if readable and not _hung_up(sock):
            addr = self._selector.unregister(sock).data
            del self._silent[sock]
            return sock, addr
        self._drop(sock)
        return None

    def _drop(self, sock: socket.socket) -> None:
        self._selector.unregister(sock)
        del self._silent[sock]
        sock.close()
        self.dropped += 1


class PolicyServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` holding the policy and the limits its handlers read, with a
    bound on its threads (see the module docstring): connections that have sent nothing wait
    in a ``_Lobby``; those with bytes to read get a thread, at most ``max_connections``."""

    daemon_threads = True
    allow_reuse_address = True
    # Seconds a connection must have waited on its client (idle between requests, or stuck
    # mid-request) before it may be closed for room; a request on loopback or a LAN takes ms.
    evict_after = 1.0

    def __init__(self, address: tuple[str, int], policy: OnnxPolicy, max_body_bytes: int = DEFAULT_MAX_BODY,
                 access_log: bool = False, idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, backlog: int = DEFAULT_BACKLOG,
                 token: Optional[str] = None, max_waiting: Optional[int] = None):
        self.policy, self.max_body_bytes, self.access_log = policy, int(max_body_bytes), access_log
        self.idle_timeout, self.max_connections = idle_timeout, int(max_connections)
        self.max_waiting = _default_max_waiting(self.max_connections) if max_waiting is None else int(max_waiting)
        self.request_queue_size = int(backlog)  # read by server_activate's listen()
        self.token_digest = None if token is None else _digest(token.encode("ascii"))
        self.evictions = 0  # connections with a thread closed to make room
        self._connections: dict[socket.socket, _Connection] = {}  # those with a thread
        self._ready: deque[tuple[socket.socket, Any]] = deque()  # bytes to read, waiting for a thread
        self._slots = threading.Condition()
        self._closing = False
        self._lobby: Optional[_Lobby] = None  # started with the first connection that needs it
        super().__init__(address, _Handler)

    @property
    def open_connections(self) -> int:
        """Connections with a thread (at most ``max_connections``)."""
        with self._slots:
            return len(self._connections)

    @property
    def waiting_connections(self) -> int:
        """Connections without a thread: silent ones, and ones with a request waiting for a slot."""
        with self._slots:
            queued, lobby = len(self._ready), self._lobby
        return queued + (len(lobby) if lobby else 0)

    @property
    def dropped_connections(self) -> int:
        """Connections closed without a thread: silent for ``idle_timeout``, or the oldest silent
        one when more than ``max_waiting`` waited."""
        return self._lobby.dropped if self._lobby is not None else 0  # an empty lobby is falsy (__len__)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._closing = False
        super().serve_forever(poll_interval)

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        """In the accepting thread: a thread now if the request's bytes are here and a slot is
        free, else the lobby. While ``max_waiting`` requests wait for a slot, stop accepting:
        the kernel's backlog holds the rest."""
        with self._slots:
            while len(self._ready) >= self.max_waiting and not self._closing:
                self._slots.wait(0.1)
            if self._closing:
                start = False
            elif len(self._connections) < self.max_connections and not self._ready and _readable([request]):
                self._connections[request] = _Connection(request)
                start = True
            else:
                if self._lobby is None or not self._lobby.alive:
                    self._lobby = _Lobby(self.max_waiting, self.idle_timeout, self._on_bytes, self._make_room)
                lobby, start = self._lobby, None
        if start:
            self._start(request, client_address)
        elif start is None:
            lobby.add(request, client_address)
        else:
            self.shutdown_request(request)

    def _start(self, request: socket.socket, client_address: Any) -> None:
        """The connection's thread (``ThreadingMixIn``); it must already be in ``_connections``."""
        try:
            super().process_request(request, client_address)
        except Exception:  # noqa: BLE001 - e.g. "can't start new thread": drop this one, keep serving
            self.handle_error(request, client_address)
            self.shutdown_request(request)

    def _dispatch(self) -> list[tuple[socket.socket, Any]]:
        """Waiting requests that now have a slot, oldest first, moved into ``_connections``.
        Called holding ``_slots``; the caller starts them after releasing it."""
        started = []
        while self._ready and len(self._connections) < self.max_connections and not self._closing:
            request, addr = self._ready.popleft()
            self._connections[request] = _Connection(request)
            started.append((request, addr))
        return started

    def _on_bytes(self, request: socket.socket, client_address: Any) -> None:
        """In the lobby's thread: a silent connection has sent its first bytes."""
        with self._slots:
            self._ready.append((request, client_address))
            started = self._dispatch()
        for args in started:
            self._start(*args)

    def _make_room(self) -> Optional[float]:
        """In the lobby's thread, each turn: while requests wait for a slot, close the connection
        that has waited longest on its client, if over ``evict_after``. Returns when to look again."""
        with self._slots:
            if not self._ready or len(self._connections) < self.max_connections:
                return None
            conns = [c for c in self._connections.values() if not c.evicted]
            if len(conns) == len(self._connections):  # none already on its way out
                now = time.monotonic()
                old = [c for c in conns if c.state != BUSY and now - c.since >= self.evict_after]
                about_to_work = _readable([c.sock for c in old if c.state == IDLE])  # its next request is here
                old = [c for c in old if not (c.state == IDLE and c.sock.fileno() in about_to_work)]
                if old:
                    min(old, key=lambda c: c.since).evict()
                    self.evictions += 1
        return 0.05

    def set_state(self, request: socket.socket, state: str) -> bool:
        """Record what a connection's thread is doing (IDLE, CLIENT_IO, BUSY). False if the
        connection was closed for room: the handler then drops it without an answer."""
        with self._slots:
            conn = self._connections.get(request)
            if conn is None or conn.evicted:
                return False
            conn.state, conn.since = state, time.monotonic()
            return True

    def shutdown_request(self, request: socket.socket) -> None:
        with self._slots:  # called once per connection with a thread, on every path
            started = self._dispatch() if self._connections.pop(request, None) is not None else []
            self._slots.notify_all()
        super().shutdown_request(request)
        for args in started:
            self._start(*args)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the client went away, timed out, or was closed for room
            log.debug("connection from %s ended: %r", client_address, exc)
        else:
            log.exception("error serving %s", client_address)

    def shutdown(self) -> None:
        with self._slots:
            self._closing = True  # an accepting thread waiting in process_request gives up
            self._slots.notify_all()
        super().shutdown()

    def server_close(self) -> None:
        """Stop listening and end every connection, waiting or open (their threads then finish)."""
        super().server_close()
        with self._slots:
            self._closing = True
            lobby, self._lobby = self._lobby, None
            queued = list(self._ready)
            self._ready.clear()
            for conn in self._connections.values():
                conn.evict()
        if lobby is not None:
            lobby.close()
        for request, _ in queued:
            super().shutdown_request(request)


# ---------------------------------------------------------------------------- requests
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a control loop reuses its connection
    server: PolicyServer

    def setup(self) -> None:
        # An idle or stalled client's thread ends after this (socket timeout, read by StreamRequestHandler).
        self.timeout = self.server.idle_timeout
        super().setup()
        # Headers and body leave in two writes; with Nagle on, the second waits for the
        # client's delayed ACK (~40 ms per request).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # already shut by an eviction; handle() ends at once
            pass

    def handle_one_request(self) -> None:
        self._body_read = False
        if not self.server.set_state(self.request, IDLE):
            self.close_connection = True
            return
        super().handle_one_request()

    def parse_request(self) -> bool:
        # Called once the request line is in: from here until _start_work, a stalled client.
        if not self.server.set_state(self.request, CLIENT_IO):
            self.close_connection = True
            return False
        return super().parse_request()

    def _start_work(self) -> bool:
        """The request is read: not closed for room while it is computed."""
        if self.server.set_state(self.request, BUSY):
            return True
        self.close_connection = True
        return False

    def log_message(self, fmt, *args):  # quiet unless asked: one line per request is a lot at 1 kHz
        if self.server.access_log:
            super().log_message(fmt, *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """BaseHTTPRequestHandler's own errors (bad request line, unsupported method, headers too
        long) as JSON like every other answer, instead of its HTML page."""
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        short = self.responses.get(code, ("error",))[0]
        data = json.dumps({"error": message or short}).encode()
        self.server.set_state(self.request, CLIENT_IO)  # blocked on the client while writing
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.wfile.write(data)

    def _send(self, status: HTTPStatus, body: dict, headers: Optional[dict[str, str]] = None) -> None:
        data = json.dumps(body, allow_nan=False).encode()  # strict JSON for any client
        self.server.set_state(self.request, CLIENT_IO)  # blocked on the client while writing
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        """True without a token or with the right one; else answers 401 (RFC 6750) and returns False."""
        expected = self.server.token_digest
        if expected is None:
            return True
        scheme, _, given = (self.headers.get("Authorization") or "").strip().partition(" ")
        given = given.strip()
        if scheme.lower() == "bearer" and given and hmac.compare_digest(
                _digest(given.encode("latin-1", "replace")), expected):
            return True
        self._drain()
        if not (scheme.lower() == "bearer" and given):
            self._send(HTTPStatus.UNAUTHORIZED, {"error": "this server needs an 'Authorization: Bearer <token>' header"},
                       {"WWW-Authenticate": _REALM})
        else:  # the token is never echoed or logged
            self._send(HTTPStatus.UNAUTHORIZED, {"error": "wrong token"},
                       {"WWW-Authenticate": f'{_REALM}, error="invalid_token"'})
        return False

    def do_GET(self) -> None:
        self._drain()  # a GET's body, left unread, would be taken for the next request
        if not self._start_work():
            return
        path = self.path.split("?", 1)[0]
        if path == "/healthz":  # open, for load balancers and probes: it says nothing about the model
            self._send(HTTPStatus.OK, {"status": "ok"})
        elif not self._authorized():
            return
        elif path == "/v1/metadata":
            self._send(HTTPStatus.OK, self.server.policy.metadata)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; try POST /v1/act, GET /v1/metadata, GET /healthz"})

    def do_POST(self) -> None:
        if not self._authorized():
            return
        if self.path.split("?", 1)[0] != "/v1/act":
            self._drain()
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}; use POST /v1/act"})
            return
        try:
            raw = self._read_body()
        except _BadRequest as e:
            self._send(e.status, {"error": e.message}, e.headers)
            return
        if not self._start_work():
            return
        status, answer = self._act(raw)
        self._send(status, answer)

    def _act(self, raw: bytes) -> tuple[HTTPStatus, dict]:
        """The answer to a POST /v1/act body: every failure becomes a status and ``{"error"}``."""
        try:
            obs, deterministic = parse_act_body(raw)
            # act() checks it: strings, nulls, ragged lists, wrong shapes, NaN all raise InvalidObservation.
            action = self.server.policy.act(obs, deterministic=deterministic)
        except _BadRequest as e:
            return e.status, {"error": e.message}
        except NonFiniteObservation as e:
            return HTTPStatus.BAD_REQUEST, {"error": str(e)}
        except InvalidObservation as e:
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)}
        except Exception as e:  # noqa: BLE001 - answer, log, and keep serving
            log.exception("act failed")
            return HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"inference failed: {type(e).__name__}"}
        return HTTPStatus.OK, {"action": _jsonable(action)}

    def _drain(self, length: int | None = None) -> None:
        """Read and drop a body we will not use. A client still sending when the socket closes
        gets a reset instead of our answer, so oversized bodies are drained too, up to a bound."""
        if self._body_read:
            return
        self._body_read = True
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
        if length < 0 or length > _DRAIN_FACTOR * self.server.max_body_bytes:
            self.close_connection = True
            return
        try:
            while length > 0:
                chunk = self.rfile.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)
        except TimeoutError:
            self.close_connection = True
        if length > 0:
            self.close_connection = True

    def _content_length(self) -> int:
        """The body's length from its headers, or ``_BadRequest`` (which closes the connection:
        where the next request would start is unknown)."""
        lengths = self.headers.get_all("Content-Length") or []
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED,
                              "Transfer-Encoding (chunked bodies) is not supported; send the body with Content-Length")
        if not lengths:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if len(set(v.strip() for v in lengths)) > 1:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"conflicting Content-Length headers {lengths[:4]}")
        raw_length = lengths[0].strip()
        if not (raw_length.isascii() and raw_length.isdigit()):  # int() would take "+5", " 5", "5_0"
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"Content-Length {raw_length!r} is not a byte count")
        return int(raw_length)

    def _read_body(self) -> bytes:
        """The request body, or ``_BadRequest``: 411 without a length, 413 over the limit, 400
        for a body that ends early, 408 for one that stops arriving."""
        length = self._content_length()
        self._body_read = True
        if length > self.server.max_body_bytes:
            self._body_read = False
            self._drain(length)
            self.close_connection = True  # a client that sends this much is not one to keep
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"body of {length} bytes is over the limit of {self.server.max_body_bytes} "
                              "(--max-body-bytes)")
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.REQUEST_TIMEOUT,
                              f"the body stopped arriving: no byte in {self.server.idle_timeout:g} s "
                              "(--idle-timeout)") from None
        if len(raw) < length:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body ended after {len(raw)} of {length} bytes (Content-Length)")
        return raw


def make_server(policy: OnnxPolicy, host: str = "127.0.0.1", port: int = 8000, *,
                max_body_bytes: int = DEFAULT_MAX_BODY, access_log: bool = False,
                idle_timeout: float = DEFAULT_IDLE_TIMEOUT, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                backlog: int = DEFAULT_BACKLOG, token: Optional[str] = None,
                max_waiting: Optional[int] = None) -> PolicyServer:
    """A server bound to ``(host, port)`` (port 0: any free port, see ``server.server_address``).

    ``token``: if set, every request but GET /healthz needs ``Authorization: Bearer <token>``
    (see ``load_token``). Binding beyond loopback without one logs a warning.
    ``max_waiting``: connections that may wait without a thread (default: 1000, fewer under a
    low open-file limit). The other limits are described in the module docstring.
    Call ``serve_forever()`` (in a thread, for tests), then ``shutdown()`` and ``server_close()``.
    """
    if not math.isfinite(max_body_bytes) or max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes!r}")
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
    if not (isinstance(max_connections, int) and max_connections >= 1):
        raise ValueError(f"max_connections must be a positive integer, got {max_connections!r}")
    if not (isinstance(backlog, int) and backlog >= 1):
        raise ValueError(f"backlog must be a positive integer, got {backlog!r}")
    if max_waiting is not None and not (isinstance(max_waiting, int) and max_waiting >= 1):
        raise ValueError(f"max_waiting must be a positive integer, got {max_waiting!r}")
    if token is not None:
        check_token(token, "the token argument")
    server = PolicyServer((host, port), policy, max_body_bytes, access_log, idle_timeout, max_connections,
                          backlog, token, max_waiting)
    warning = exposure_warning(server.server_address[0], token is not None)
    if warning:
        log.warning(warning)
    return server
