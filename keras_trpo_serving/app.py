"""The ASGI application (Starlette): routes, bearer auth, JSON errors, body limits, batching, metrics.

POST /v1/act       {"obs": [...], "deterministic": true} -> {"action": [...]}
                   {"obs": [...], "deterministic": false, "noise": [...] | "seed": 7}: a sampled action
                   recurrent policy: {"obs": ..., "state": [...], "episode_start": false} -> {"action": ..., "state": [...]}
                   Dict observations: "obs": {"key": [...], ...}, or a list of such objects for a batch
                   masked policy: "action_mask": [0/1 or booleans] ([W], or [B][W] for a batch); none: all valid
GET  /v1/metadata  spaces, env id, version, distribution
GET  /healthz      {"status": "ok"}            (never needs the token)
GET  /metrics      Prometheus text format
GET  /openapi.json OpenAPI 3.1, with this policy's observation and action shapes

The policy is called on the event loop: a call takes microseconds, less than a trip to a thread.
"""
from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any, Callable, Optional

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from keras_trpo_serving.auth import bearer_problem
from keras_trpo_serving.batching import Batcher
from keras_trpo_serving.body import BadRequest, check_no_booleans, dict_columns, parse_act_body
from keras_trpo_serving.errors import (InvalidActionMask, InvalidNoise, InvalidObservation, InvalidState,
                                       NonFiniteObservation)
from keras_trpo_serving.metrics import Metrics, MetricsMiddleware
from keras_trpo_serving.openapi import openapi_document
from keras_trpo_serving.settings import AppLimits

_DRAIN_FACTOR = 8  # a 413 for a body up to this many limits keeps the connection (uvicorn discards the rest)
_NOISE_FOR_ONE = '"noise" goes with one observation; for a batch send "seed" (or neither)'
_ROUTES_HINT = "try POST /v1/act, GET /v1/metadata, GET /healthz, GET /metrics, GET /openapi.json"
log = logging.getLogger("keras_trpo_serving.server")


class JsonResponse(Response):
    """Strict JSON (no NaN tokens), in the same bytes as the standard-library server wrote."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False).encode()


def _error(status: int, message: str, headers: Optional[dict[str, str]] = None) -> JsonResponse:
    return JsonResponse({"error": message}, status_code=status, headers=headers)


def checked_request_mask(policy: Any, mask: Any, single: bool, rows: int) -> Optional[np.ndarray]:
    """A request's ``action_mask`` as ``policy.checked_mask`` gives it (None if absent), its nesting
    matching the observation's: ``[W]`` for one observation, ``[B][W]`` for a batch (even of one), so
    that what the server takes is what the OpenAPI document says. ``InvalidActionMask`` otherwise."""
    if mask is None or policy.mask_width is None:
        return policy.checked_mask(mask, rows)  # None, or the error naming a mask sent to an unmasked policy
    nested = isinstance(mask, list) and any(isinstance(v, list) for v in mask)
    if single and nested:
        raise InvalidActionMask(f"one observation's action_mask is a list of {policy.mask_width} entries (0/1 or "
                                "booleans), not a list of lists")
    if not single and not nested:
        raise InvalidActionMask(f"a batch of {rows} observations takes one action_mask row per observation: a list "
                                f"of {rows} lists of {policy.mask_width} entries")
    return policy.checked_mask(mask, rows)


def _jsonable(x: Any) -> Any:
    return x.tolist() if isinstance(x, np.ndarray) else (x.item() if isinstance(x, np.generic) else x)


async def read_body(request: Request, limits: AppLimits) -> bytes:
    """The body, or ``BadRequest``: 411 without a length, 413 over the limit, 408 if it stops arriving."""
    length = request.headers.get("content-length")  # uvicorn's parser has refused malformed or conflicting ones
    if length is None and "transfer-encoding" not in request.headers:
        raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
    limit = limits.max_body_bytes
    if length is not None and int(length) > limit:
        close = {"Connection": "close"} if int(length) > _DRAIN_FACTOR * limit else None
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"body of {length} bytes is over the limit of {limit} (--max-body-bytes)", close)
    # The deadline is a timer that cancels this task: a few microseconds, against tens for a
    # cancel scope (anyio.fail_after), and most requests never wait for their body anyway.
    task = asyncio.current_task()
    expired: list = []
    timer = asyncio.get_running_loop().call_later(limits.body_timeout, lambda: expired.append(task.cancel()))
    chunks, size, more = [], 0, True
    try:
        while more:  # chunked bodies are counted as they come
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect()
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False) and size <= limit
    except asyncio.CancelledError:
        if not expired:
            raise
        task.uncancel()
        raise BadRequest(HTTPStatus.REQUEST_TIMEOUT, f"the body stopped arriving: not complete within "
                         f"{limits.body_timeout:g} s (--body-timeout)", {"Connection": "close"}) from None
    finally:
        timer.cancel()
    if size > limit:  # a chunked body (no Content-Length) that grew past the limit: the rest is not worth reading
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"body of over {limit} bytes is over the limit of {limit} (--max-body-bytes)",
                         {"Connection": "close"})
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class BearerAuth:
    """ASGI middleware: every route but /healthz needs the token (unknown routes too: no route map for strangers)."""

    def __init__(self, app: Callable, digest: bytes):
        self.app, self.digest = app, digest

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope["path"] != "/healthz":
            header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            problem = bearer_problem(header, self.digest)
            if problem is not None:
                message, challenge = problem
                await _error(HTTPStatus.UNAUTHORIZED, message, {"WWW-Authenticate": challenge})(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(policy: Any, limits: AppLimits, token_digest: Optional[bytes] = None,
               metrics: Optional[Metrics] = None) -> Starlette:
    """The ASGI app serving ``policy`` (an ``ExportedPolicy``)."""
    metrics = metrics or Metrics()
    batcher = None
    recurrent, keys, masked = policy.is_recurrent, policy.obs_keys, policy.mask_width is not None
    if limits.batch_max > 1:
        # A recurrent request's rows carry their own states: {"obs": x, "state": s} -> (actions, states);
        # a masked policy's their own masks (all ones for a request without one): {"obs": x, "mask": m}.
        if recurrent:
            run = lambda feed: policy.step(feed["obs"], feed["state"], action_mask=feed.get("mask"))  # noqa: E731
        elif masked:
            run = lambda feed: policy.act(feed["obs"], deterministic=True, action_mask=feed["mask"])  # noqa: E731
        else:
            run = lambda x: policy.act(x, deterministic=True)  # noqa: E731
        batcher = Batcher(run, limits.batch_max, limits.batch_wait_us / 1e6, metrics.observe_batch)
    document = openapi_document(policy.metadata, policy.observation_space, policy.action_space,
                                authenticated=token_digest is not None, noise_width=policy.noise_shape[0],
                                state_size=policy.state_size, mask_width=policy.mask_width)
    metadata_body = JsonResponse(policy.metadata).body  # rendered once

    async def act(request: Request) -> Response:
        try:
            body = parse_act_body(await read_body(request, limits), recurrent)
            obs, deterministic = body.obs, body.deterministic
            if isinstance(obs, list) and not obs:  # an empty batch, whatever the observation's shape
                if body.noise is not None:
                    raise InvalidNoise(_NOISE_FOR_ONE)
                if body.action_mask is not None:
                    if not masked:
                        policy.checked_mask(body.action_mask, 0)  # raises, naming the policy's missing mask input
                    if body.action_mask != []:
                        raise InvalidActionMask("an empty batch takes no action_mask rows (send [] or none)")
                if not recurrent:
                    return JsonResponse({"action": []})
                if body.state not in (None, []) or body.episode_start not in (None, [], True, False):
                    raise InvalidState("an empty batch takes no state and no episode_start rows")
                return JsonResponse({"action": [], "state": []})
            if keys is not None:
                obs = dict_columns(obs, keys)  # a batch of objects -> one list per key
            check_no_booleans(obs)
            x, single = policy.check(obs)  # strings, nulls, ragged lists, wrong shapes, NaN: InvalidObservation
            rows = len(x) if keys is None else len(x[keys[0]])
            mask = checked_request_mask(policy, body.action_mask, single, rows)  # float32 [rows, W] or None
            if mask is None and masked and batcher is not None:
                mask = np.ones((rows, policy.mask_width), np.float32)  # batched with masked requests: all valid
            if body.noise is not None:
                # One observation's noise only: JSON Schema cannot tie a batch's row counts together, so
                # the documented contract (OpenAPI) stays one any schema-valid request can keep.
                if not single:
                    raise InvalidNoise(_NOISE_FOR_ONE)
                if not isinstance(body.noise, list) or any(isinstance(v, list) for v in body.noise):
                    raise InvalidNoise(f"noise for one observation is a list of {policy.noise_shape[0]} numbers")
                check_no_booleans(body.noise)
            # A seed makes the request reproducible on its own: its generator lives for this request only.
            rng = np.random.default_rng(body.seed) if body.seed is not None else None
            if recurrent:  # stateless: the client sends the state and gets the new one back
                if body.state is not None:
                    check_no_booleans(body.state, "state")
                # [rows, S], zeros where episode_start says: one observation's state is [S], a batch's [B, S]
                state_in = policy.checked_state(body.state, rows, single, body.episode_start)
                if batcher is not None and deterministic:
                    rows_in = {"obs": x, "state": state_in, **({"mask": mask} if masked else {})}
                    action, state = await batcher.submit(rows_in)
                else:
                    action, state = policy.step(x, state_in, deterministic=deterministic, rng=rng, noise=body.noise,
                                                action_mask=mask)
                    metrics.observe_batch(1, rows)
                return JsonResponse({"action": _jsonable(policy.one(action) if single else action),
                                     "state": _jsonable(state[0] if single else state)})
            if not rows:
                out = policy.act(x, deterministic=deterministic)
            elif batcher is not None and deterministic:  # sampled actions are not batched: same draws as unbatched
                out = await batcher.submit({"obs": x, "mask": mask} if masked else x)
            elif deterministic:
                out = policy.act(x, deterministic=True, action_mask=mask)
                metrics.observe_batch(1, rows)
            else:
                out = policy.act(x, deterministic=False, rng=rng, noise=body.noise, action_mask=mask)
                metrics.observe_batch(1, rows)
        except BadRequest as e:
            return _error(e.status, e.message, e.headers)
        except NonFiniteObservation as e:
            return _error(HTTPStatus.BAD_REQUEST, str(e))
        except InvalidObservation as e:
            return _error(HTTPStatus.UNPROCESSABLE_ENTITY, str(e))
        except ClientDisconnect:
            return _error(HTTPStatus.BAD_REQUEST, "the client went away")  # nobody reads it
        except Exception as e:  # noqa: BLE001 - answer, log, and keep serving
            log.exception("act failed")
            return _error(HTTPStatus.INTERNAL_SERVER_ERROR, f"inference failed: {type(e).__name__}")
        return JsonResponse({"action": _jsonable(policy.one(out) if single else out)})

    async def metadata(request: Request) -> Response:
        return Response(metadata_body, media_type="application/json")

    async def health(request: Request) -> Response:
        return JsonResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return JsonResponse(document)

    async def prometheus(request: Request) -> Response:
        body, content_type = metrics.exposition()
        return Response(body, headers={"Content-Type": content_type})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == HTTPStatus.NOT_FOUND:
            return _error(404, f"no route {request.method} {request.url.path}; {_ROUTES_HINT}")
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            return _error(405, f"{request.method} is not allowed on {request.url.path}", exc.headers)
        return _error(exc.status_code, str(exc.detail), exc.headers)

    middleware = [Middleware(MetricsMiddleware, metrics=metrics)]
    if token_digest is not None:
        middleware.append(Middleware(BearerAuth, digest=token_digest))
    app = Starlette(routes=[Route("/v1/act", act, methods=["POST"]), Route("/v1/metadata", metadata, methods=["GET"]),
                            Route("/healthz", health, methods=["GET"]), Route("/metrics", prometheus, methods=["GET"]),
                            Route("/openapi.json", openapi, methods=["GET"])],
                    middleware=middleware, exception_handlers={HTTPException: http_error})
    app.router.redirect_slashes = False  # /v1/act/ is not a route either, not a redirect
    app.state.metrics = metrics
    return app
