"""A small JSON-over-HTTP front for ``OnnxPolicy``, standard library only.

POST /v1/act       {"obs": [...], "deterministic": true} -> {"action": [...]}
GET  /v1/metadata  spaces, env id, version, distribution
GET  /healthz      {"status": "ok"}

One thread per connection (``ThreadingHTTPServer``); onnxruntime's ``run`` is
thread-safe and neither ``OnnxPolicy`` nor the handler keeps per-request state anywhere
shared (each request's data lives in its own handler object and locals), so answers
never mix. The sampling generator is the one shared mutable thing, and it is locked.
"""
from __future__ import annotations

import json
import logging
import math
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from serving.errors import InvalidObservation, NonFiniteObservation
from serving.policy import OnnxPolicy

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: ~25k float observations, far more than a control loop sends
DEFAULT_IDLE_TIMEOUT = 60.0  # seconds a kept-alive connection (and its thread) may sit idle
_DRAIN_FACTOR = 8  # read and drop an oversized body up to this many limits, so the client sees the 413
log = logging.getLogger("serving.server")


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON (RFC 8259), though Python's json would accept them.
    raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body contains {name}; observations must be finite numbers")


def _jsonable(x: Any) -> Any:
    return x.tolist() if isinstance(x, np.ndarray) else (x.item() if isinstance(x, np.generic) else x)


class PolicyServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` holding the policy and the limits its handlers read."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], policy: OnnxPolicy, max_body_bytes: int = DEFAULT_MAX_BODY,
                 access_log: bool = False, idle_timeout: float = DEFAULT_IDLE_TIMEOUT):
        self.policy, self.max_body_bytes, self.access_log = policy, int(max_body_bytes), access_log
        self.idle_timeout = idle_timeout
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a control loop reuses its connection
    server: PolicyServer

    def setup(self) -> None:
        # An idle or stalled client's thread ends after this (socket timeout, read by StreamRequestHandler).
        self.timeout = self.server.idle_timeout
        super().setup()
        # Headers and body leave in two writes; with Nagle on, the second waits for the
        # client's delayed ACK (~40 ms per request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
        self.send_response(code, message)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.wfile.write(data)

    def _send(self, status: HTTPStatus, body: dict) -> None:
        data = json.dumps(body, allow_nan=False).encode()  # strict JSON for any client
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(HTTPStatus.OK, {"status": "ok"})
        elif path == "/v1/metadata":
            self._send(HTTPStatus.OK, self.server.policy.metadata)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; try POST /v1/act, GET /v1/metadata, GET /healthz"})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/v1/act":
            self._drain()
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route POST {self.path}; use POST /v1/act"})
            return
        try:
            body = self._read_json()
            if not isinstance(body, dict) or "obs" not in body:
                raise _BadRequest(HTTPStatus.BAD_REQUEST, 'expected a JSON object {"obs": [...]}')
            deterministic = body.get("deterministic", True)
            if not isinstance(deterministic, bool):
                raise _BadRequest(HTTPStatus.BAD_REQUEST, '"deterministic" must be true or false')
            # act() checks it: strings, nulls, ragged lists, wrong shapes, NaN all raise InvalidObservation.
            action = self.server.policy.act(body["obs"], deterministic=deterministic)
        except _BadRequest as e:
            self._send(e.status, {"error": e.message})
            return
        except NonFiniteObservation as e:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(e)})
            return
        except InvalidObservation as e:
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)})
            return
        except Exception as e:  # noqa: BLE001 - answer, log, and keep serving
            log.exception("act failed")
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"inference failed: {type(e).__name__}"})
            return
        self._send(HTTPStatus.OK, {"action": _jsonable(action)})

    def _drain(self, length: int | None = None) -> None:
        """Read and drop a body we will not use. A client still sending when the socket closes
        gets a reset instead of our answer, so oversized bodies are drained too, up to a bound."""
        if length is None:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
        if length < 0 or length > _DRAIN_FACTOR * self.server.max_body_bytes:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def _read_json(self) -> Any:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"Content-Length {raw_length!r} is not a byte count")
        if length > self.server.max_body_bytes:
            self._drain(length)
            self.close_connection = True  # a client that sends this much is not one to keep
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"body of {length} bytes is over the limit of {self.server.max_body_bytes} "
                              "(--max-body-bytes)")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}")


def make_server(policy: OnnxPolicy, host: str = "127.0.0.1", port: int = 8000, *,
                max_body_bytes: int = DEFAULT_MAX_BODY, access_log: bool = False,
                idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> PolicyServer:
    """A server bound to ``(host, port)`` (port 0: any free port, see ``server.server_address``).

    Call ``serve_forever()`` (in a thread, for tests), then ``shutdown()`` and ``server_close()``.
    """
    if not math.isfinite(max_body_bytes) or max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes!r}")
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
    return PolicyServer((host, port), policy, max_body_bytes, access_log, idle_timeout)
