"""A small JSON-over-HTTP front for ``OnnxPolicy``, standard library only.

POST /v1/act       {"obs": [...], "deterministic": true} -> {"action": [...]}
GET  /v1/metadata  spaces, env id, version, distribution
GET  /healthz      {"status": "ok"}

One thread per connection (``ThreadingHTTPServer``); onnxruntime's ``run`` is
thread-safe and ``OnnxPolicy`` keeps no per-request state, so answers never mix.
"""
from __future__ import annotations

import json
import math
import socket
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from serving.errors import InvalidObservation
from serving.policy import OnnxPolicy

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB: ~25k float observations, far more than a control loop sends


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _reject_constant(name: str) -> Any:
    raise _BadRequest(HTTPStatus.UNPROCESSABLE_ENTITY, f"obs contains {name}; observations must be finite numbers")


def _jsonable(x: Any) -> Any:
    return x.tolist() if isinstance(x, np.ndarray) else (x.item() if isinstance(x, np.generic) else x)


class PolicyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], policy: OnnxPolicy, max_body_bytes: int = DEFAULT_MAX_BODY,
                 access_log: bool = False):
        self.policy, self.max_body_bytes, self.access_log = policy, int(max_body_bytes), access_log
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a control loop reuses its connection
    server: PolicyServer

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes; with Nagle on, the second waits for the
        # client's delayed ACK (~40 ms per request).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # quiet unless asked: one line per request is a lot at 1 kHz
        if self.server.access_log:
            super().log_message(fmt, *args)

    def _send(self, status: HTTPStatus, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/v1/metadata":
            self._send(HTTPStatus.OK, self.server.policy.metadata)
        else:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}; try POST /v1/act, GET /v1/metadata, GET /healthz"})

    def do_POST(self) -> None:
        if self.path != "/v1/act":
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
            try:
                obs = np.asarray(body["obs"], dtype=np.float32)
            except (ValueError, TypeError):
                raise _BadRequest(HTTPStatus.UNPROCESSABLE_ENTITY,
                                  f"obs must be numbers shaped {list(self.server.policy.obs_shape)} or a list of those")
            action = self.server.policy.act(obs, deterministic=deterministic)
        except _BadRequest as e:
            self._send(e.status, {"error": e.message})
            return
        except InvalidObservation as e:
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)})
            return
        self._send(HTTPStatus.OK, {"action": _jsonable(action)})

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= self.server.max_body_bytes:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _read_json(self) -> Any:
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            length = int(raw_length)
        except ValueError:
            self.close_connection = True
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "Content-Length is not a number")
        if length > self.server.max_body_bytes:
            self.close_connection = True  # the body is not read; the connection cannot be reused
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                              f"body of {length} bytes is over the limit of {self.server.max_body_bytes}")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw, parse_constant=_reject_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}")


def make_server(policy: OnnxPolicy, host: str = "127.0.0.1", port: int = 8000, *,
                max_body_bytes: int = DEFAULT_MAX_BODY, access_log: bool = False) -> PolicyServer:
    """A server bound to ``(host, port)`` (port 0: any free port, see ``server.server_address``).

    Call ``serve_forever()`` (in a thread, for tests) and ``shutdown()`` to stop.
    """
    if not math.isfinite(max_body_bytes) or max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes!r}")
    return PolicyServer((host, port), policy, max_body_bytes, access_log)
