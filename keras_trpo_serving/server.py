"""The HTTP server: the ASGI app of ``keras_trpo_serving.app`` on uvicorn, with its settings in one dataclass.

Needs the http extra (``pip install 'keras-trpo-serving[http]'``: uvicorn, starlette,
prometheus-client); the in-process runtime (``OnnxPolicy``) does not.

    srv = make_server(policy, "127.0.0.1", 0, max_body_bytes=4096)   # bound now; srv.server_address
    srv.serve_forever()        # in a thread for tests; srv.shutdown(), join the thread, then srv.server_close()

Connections are uvicorn's: one asyncio loop, so a connection that sends slowly costs a little
memory, not a thread. The limits are uvicorn's settings (``limit_concurrency``,
``timeout_keep_alive``, ``backlog``, ``h11_max_incomplete_event_size``,
``timeout_graceful_shutdown``) plus a deadline for request heads (``keras_trpo_serving.protocol``) and the
body limits the app enforces (size, time).
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import socket
import tempfile
from typing import Any, Optional

import uvicorn

from keras_trpo_serving.app import create_app
from keras_trpo_serving.auth import exposure_warning, log, token_digest
from keras_trpo_serving.metrics import MULTIPROC_ENV, Metrics
from keras_trpo_serving.protocol import ServingConfig, protocol_class
from keras_trpo_serving.settings import AppLimits, ServerSettings

WORKER_ENV = "KERAS_TRPO_SERVING_WORKER"  # what --workers' processes load (JSON; a token digest, never the token)


def uvicorn_config(settings: ServerSettings, app: Any, **extra: Any) -> ServingConfig:
    """uvicorn's settings from ours."""
    return ServingConfig(app, host=settings.host, port=settings.port, http=protocol_class(settings.http),
                         lifespan="off", log_config=None, access_log=settings.access_log,
                         limit_concurrency=settings.max_concurrency, backlog=settings.backlog,
                         timeout_keep_alive=settings.keep_alive_timeout,
                         timeout_graceful_shutdown=settings.graceful_timeout,
                         h11_max_incomplete_event_size=settings.max_header_bytes, server_header=False,
                         header_timeout=settings.header_timeout, **extra)


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one), so the address is known before serving."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:  # a name: let getaddrinfo decide
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.set_inheritable(True)  # --workers' processes listen on it too
    # asyncio turns Nagle off only for sockets whose proto is IPPROTO_TCP, and create_server's is 0; with
    # Nagle on, uvicorn's separate header and body writes waited for the client's delayed ACK: 44 ms per
    # keep-alive request on an idle machine. Accepted connections inherit the option on Linux.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class PolicyServer:
    """A bound uvicorn server for one app. ``serve_forever`` blocks; ``shutdown`` (from another
    thread) stops it gracefully; ``server_close`` releases the socket."""

    def __init__(self, app: Any, settings: ServerSettings):
        self.settings, self.app = settings, app
        self.socket = bind(settings.host, settings.port, settings.backlog)
        self.server_address: tuple = self.socket.getsockname()
        self.server = uvicorn.Server(uvicorn_config(settings, app))

    @property
    def metrics(self) -> Metrics:
        return self.app.state.metrics

    @property
    def started(self) -> bool:
        return self.server.started

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.socket])

    def shutdown(self) -> None:
        self.server.should_exit = True

    def server_close(self) -> None:
        self.socket.close()


def make_server(policy: Any, host: str = "127.0.0.1", port: int = 8000, **settings: Any) -> PolicyServer:
    """A server for ``policy`` bound to ``(host, port)``; ``settings`` are ``ServerSettings`` fields.

    ``token``: if set, every request but GET /healthz needs ``Authorization: Bearer <token>``
    (see ``load_token``). Binding beyond loopback without one logs a warning."""
    config = ServerSettings(host=host, port=port, **settings)
    app = create_app(policy, config.app_limits(), None if config.token is None else token_digest(config.token))
    server = PolicyServer(app, config)
    warning = exposure_warning(server.server_address[0], config.token is not None)
    if warning:
        log.warning(warning)
    return server


# ---------------------------------------------------------------------------- --workers
def worker_app() -> Any:
    """The app in each --workers process (uvicorn's factory): the model and settings from WORKER_ENV."""
    from keras_trpo_serving.load import load_policy

    spec = json.loads(os.environ[WORKER_ENV])
    policy = load_policy(spec["model"], seed=spec["seed"], threads=spec["threads"])
    limits = AppLimits(**spec["limits"])
    digest = bytes.fromhex(spec["token_digest"]) if spec["token_digest"] else None
    return create_app(policy, limits, digest)


def serve_workers(model: str, seed: Optional[int], threads: int, settings: ServerSettings,
                  on_bound: Any = None) -> None:
    """Serve with ``settings.workers`` processes on one socket (uvicorn's supervisor restarts dead ones);
    metrics are summed across them. ``on_bound(address)`` is called once the socket listens."""
    from uvicorn.supervisors import Multiprocess

    sock = bind(settings.host, settings.port, settings.backlog)
    warning = exposure_warning(sock.getsockname()[0], settings.token is not None)
    if warning:
        log.warning(warning)
    spec = {"model": os.path.abspath(model), "seed": seed, "threads": threads,
            "limits": dataclasses.asdict(settings.app_limits()),
            "token_digest": token_digest(settings.token).hex() if settings.token else None}
    with tempfile.TemporaryDirectory(prefix="serving-metrics-") as metrics_dir:
        os.environ[WORKER_ENV] = json.dumps(spec)
        os.environ[MULTIPROC_ENV] = metrics_dir  # inherited by the workers
        config = uvicorn_config(settings, "keras_trpo_serving.server:worker_app", factory=True, workers=settings.workers)
        if on_bound is not None:
            on_bound(sock.getsockname())
        try:
            Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
