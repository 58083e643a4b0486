"""The OpenAPI 3.1 document of a server: its routes, with the loaded policy's observation and
action shapes as JSON Schema, so clients can be generated from it and schemathesis can test it."""
from __future__ import annotations

import math
from typing import Any, Optional

from keras_trpo_serving.body import MAX_SEED
from keras_trpo_serving.spaces import Space

# The smallest magnitude that float32 rounds to infinity (halfway from FLT_MAX to 2**128): the server
# refuses it and anything larger with 400, and takes everything below (rounded to float32).
F32_OVERFLOW = 3.4028235677973366e38
_ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_STATUSES = {
    "400": "not JSON, not {\"obs\": ...}, an unknown or repeated field (\"state\" for a feed-forward policy), "
           "NaN or Infinity anywhere in the body (not JSON), an observation beyond float32 (a state or noise beyond "
           "float32 is 422), \"noise\" or \"seed\" with \"deterministic\": true, both of them, a "
           "seed that is not an integer from 0 to 2^53 - 1, a state that is not an array or an episode_start that "
           "is not booleans",
    "401": "missing or wrong bearer token",
    "408": "the request's head or body stopped arriving",
    "413": "body over --max-body-bytes",
    "422": "an observation of the wrong shape or not numbers (or a Discrete index out of range; a Dict "
           "observation's missing or unknown key); noise of the wrong length or with a batch of observations, or, "
           "for uniforms, outside [0, 1), or beyond float32; a recurrent state of the wrong shape or beyond float32, "
           "or state rows or episode_start entries that do not match the batch; an action_mask sent to a policy "
           "exported without one, or of the wrong shape or nesting, with values other than 0/1 (or booleans), or "
           "leaving no valid action (in a row, a MultiDiscrete sub-space or a MultiBinary bit)",
    "500": "inference failed",
    "503": "over --max-concurrency",
}


def _nested(item: dict, shape: tuple[int, ...]) -> dict:
    for n in reversed(shape):
        item = {"type": "array", "items": item, "minItems": n, "maxItems": n}
    return item


def observation_schema(space: Space) -> dict:
    """One observation as the server accepts it (a Dict's: an object with every key, nothing else)."""
    if space.spaces is not None:
        return {"type": "object", "required": list(space.spaces), "additionalProperties": False,
                "properties": {k: observation_schema(v) for k, v in space.spaces.items()},
                "description": f"Dict with the keys {list(space.spaces)}; a batch is a list of such objects"}
    if space.type == "Discrete":
        lo = int(space.start)
        return {"type": "integer", "minimum": lo, "maximum": lo + space.n - 1}
    # Box bounds are the training env's; values outside them are still valid input, so they are
    # described, not enforced (the server checks only shape and finiteness).
    number: dict[str, Any] = {"type": "number", "exclusiveMinimum": -F32_OVERFLOW, "exclusiveMaximum": F32_OVERFLOW}
    schema = _nested(number, space.shape)
    if space.low is not None:
        schema["description"] = (f"Box{list(space.shape)}, env bounds low={_bound_text(space.low)} "
                                 f"high={_bound_text(space.high)}")
    return schema


def action_schema(space: Space) -> dict:
    """One action as the server answers it."""
    if space.type == "Discrete":
        lo = int(space.start)
        return {"type": "integer", "minimum": lo, "maximum": lo + space.n - 1}
    if space.type == "MultiBinary":
        return _nested({"type": "integer", "minimum": 0, "maximum": 1}, space.shape)
    if space.type == "MultiDiscrete":
        starts, nvec = space.start.reshape(-1).tolist(), space.nvec.reshape(-1).tolist()
        if len(set(starts)) == 1 and len(set(nvec)) == 1:
            item = {"type": "integer", "minimum": starts[0], "maximum": starts[0] + nvec[0] - 1}
        else:
            item = {"type": "integer", "minimum": min(starts), "maximum": max(s + n - 1 for s, n in zip(starts, nvec))}
        return _nested(item, space.shape)
    number: dict[str, Any] = {"type": "number"}  # Box: clipped to its bounds
    low, high = space.low.reshape(-1), space.high.reshape(-1)
    if low.size and len(set(low.tolist())) == 1 and math.isfinite(low[0]):
        number["minimum"] = float(low[0])
    if high.size and len(set(high.tolist())) == 1 and math.isfinite(high[0]):
        number["maximum"] = float(high[0])
    return _nested(number, space.shape)


def noise_schema(distribution: str, width: int) -> dict:
    """One observation's noise: ``width`` uniforms in [0, 1) or standard normals (finite float32)."""
    if distribution == "diag_gaussian":
        number: dict[str, Any] = {"type": "number", "exclusiveMinimum": -F32_OVERFLOW, "exclusiveMaximum": F32_OVERFLOW}
        what = "standard normals, one per action dimension"
    else:
        number = {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
        what = "uniforms in [0, 1), one per logit"
    return dict(_nested(number, (width,)), description=f"{what} (float32)")


def state_schema(size: int) -> dict:
    """One observation's recurrent state: ``size`` finite float32 numbers."""
    number = {"type": "number", "exclusiveMinimum": -F32_OVERFLOW, "exclusiveMaximum": F32_OVERFLOW}
    return dict(_nested(number, (size,)), description=f"the recurrent state (state_size {size}, float32)")


_MASK_ENTRY = {"enum": [0, 1, False, True]}
_VALID = {"enum": [1, True]}
_MAX_POSITIONAL = 4096  # beyond this many schema cells, the per-group "something valid" rule is only described


def mask_groups(space: Space, width: int) -> list[list[int]]:
    """The entries of a mask of which at least one must be valid (sampling.py's layouts): all of them
    for Discrete, each sub-space's for MultiDiscrete, each bit's pair for MultiBinary."""
    if space.type == "MultiDiscrete":
        ends = [int(e) for e in space.nvec.reshape(-1).cumsum()]
        return [list(range(a, b)) for a, b in zip([0] + ends[:-1], ends)]
    if space.type == "MultiBinary":
        return [[2 * i, 2 * i + 1] for i in range(width // 2)]
    return [list(range(width))]


def mask_schema(space: Space, width: int) -> dict:
    """One observation's action mask: ``width`` entries 0/1 (or booleans), at least one valid in each
    group (``mask_groups``), so that every request the schema allows is answered with 200."""
    groups = mask_groups(space, width)
    schema: dict[str, Any] = dict(_nested(_MASK_ENTRY, (width,)))
    if len(groups) == 1:
        schema["contains"] = _VALID
    elif sum(sum(g) + len(g) for g in groups) <= _MAX_POSITIONAL:
        # "entry p is valid" is prefixItems [{} x p, valid]; a group needs any of its entries valid.
        schema["allOf"] = [{"anyOf": [{"prefixItems": [{}] * p + [_VALID]} for p in g]} for g in groups]
    what = {"MultiDiscrete": "the sub-spaces' entries concatenated, at least one valid per sub-space",
            "MultiBinary": "two entries per bit, [may be 0, may be 1], at least one of each pair"}.get(
        space.type, "one entry per action, at least one valid")
    schema["description"] = f"1 (or true) = valid, 0 (or false) = invalid; {what}"
    return schema


def _add_mask(act_request: dict, width: int) -> None:
    """A masked policy's request takes ``action_mask``, documented for one observation (as ``noise``):
    JSON Schema cannot tie a batch's mask rows to its observations. The server also takes ``[B][W]``
    with a batch of B observations (422 if the rows do not match)."""
    act_request["properties"]["action_mask"] = {
        "$ref": "#/components/schemas/ActionMask",
        "description": f"which actions are valid for this observation ({width} entries); absent: all valid. For a "
                       "batch (not in this schema) the server takes one row per observation, [B][W]"}
    one = {"properties": {"obs": {"$ref": "#/components/schemas/Observation"}}}
    act_request.setdefault("allOf", []).append({"if": {"required": ["action_mask"]}, "then": one})


def _shape_text(space: Space) -> str:
    return str(list(space.spaces)) if space.spaces is not None else str(list(space.shape))


def _bound_text(arr: Any) -> str:
    values = arr.reshape(-1).tolist()
    return str(values[0]) if len(set(values)) == 1 else str(values)


def _add_state(act_request: dict, act_response: dict) -> None:
    """A recurrent policy's request takes ``state`` and ``episode_start``; its answer has ``state``.

    Documented with one observation only (as ``noise``): JSON Schema cannot tie a batch's state rows
    to its observations, and every schema-valid request must be answerable. The server also takes
    a batch with ``[B][S]`` states and ``[B]`` episode starts (422 if the rows do not match)."""
    ref = {"$ref": "#/components/schemas/State"}
    act_request["properties"]["state"] = dict(ref, description=(
        "the state state_out gave for this observation's predecessor; absent = episode start (zeros). For a "
        "batch (not in this schema) the server takes one state per observation, [B][S]"))
    act_request["properties"]["episode_start"] = {
        "type": "boolean", "description": "true: this observation starts an episode, the state is zeros whatever "
                                          "was sent (for a batch, one boolean per observation)"}
    one = {"properties": {"obs": {"$ref": "#/components/schemas/Observation"}}}
    act_request["allOf"] = [{"if": {"required": ["state"]}, "then": one},
                            {"if": {"required": ["episode_start"]}, "then": one}]
    act_response["required"] = ["action", "state"]
    act_response["properties"]["state"] = {"oneOf": [ref, {"type": "array", "items": ref}],
                                           "description": "the new state (state_out): send it with the next observation"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict:
    return {s: _json(_ERROR, _ERROR_STATUSES[s]) for s in statuses}


def openapi_document(metadata: dict, observation_space: Space, action_space: Space, *, authenticated: bool,
                     version: Optional[str] = None, noise_width: Optional[int] = None, state_size: int = 0,
                     mask_width: Optional[int] = None) -> dict:
    """The document GET /openapi.json serves; ``metadata`` is the policy's (GET /v1/metadata)."""
    env = metadata.get("env_id") or "unknown env"
    obs, act = observation_schema(observation_space), action_schema(action_space)
    auth = ("401",) if authenticated else ()
    secured = {"security": [{"bearer": []}]} if authenticated else {}
    act_request = {
        "type": "object", "required": ["obs"], "additionalProperties": False,
        "properties": {
            "obs": {"oneOf": [{"$ref": "#/components/schemas/Observation"},
                              {"type": "array", "items": {"$ref": "#/components/schemas/Observation"}}],
                    "description": "one observation, or a batch of them"},
            "deterministic": {"type": "boolean",
                              "description": "false: sample from the policy's distribution (the default when "
                                             "noise or seed is given, else true)"},
            "noise": {"$ref": "#/components/schemas/Noise",
                      "description": "the sample's noise, for one observation (for a batch, send seed): the same "
                                     "noise gives the same action on every exported format"},
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED,
                     "description": "draw the noise from numpy's default_rng(seed): the same request gives the same "
                                    "answer (without noise or seed the server's own generator draws it)"},
        },
        # Stateless sampling: noise (with one observation) or seed, not both, never with "deterministic": true.
        "if": {"required": ["noise"]}, "then": {"properties": {"obs": {"$ref": "#/components/schemas/Observation"}}},
        "not": {"anyOf": [{"required": ["noise", "seed"]},
                          {"required": ["deterministic", "noise"], "properties": {"deterministic": {"const": True}}},
                          {"required": ["deterministic", "seed"], "properties": {"deterministic": {"const": True}}}]},
    }
    act_response = {
        "type": "object", "required": ["action"], "additionalProperties": False,
        "properties": {"action": {"oneOf": [{"$ref": "#/components/schemas/Action"},
                                            {"type": "array", "items": {"$ref": "#/components/schemas/Action"}}],
                                  "description": "one action, or one per observation of a batch"}},
    }
    if state_size:
        _add_state(act_request, act_response)
    if mask_width:
        _add_mask(act_request, mask_width)
    metadata_schema = {
        "type": "object", "required": ["observation_space", "action_space", "distribution"],
        "properties": {"observation_space": {"type": "object"}, "action_space": {"type": "object"},
                       "distribution": {"type": "string"}},
        "additionalProperties": True,
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": f"keras-trpo policy ({env})",
            "version": version or str(metadata.get("keras_trpo_version", "0")),
            "description": (f"A {metadata.get('distribution')} policy for {env}: observation "
                            f"{observation_space.type}{_shape_text(observation_space)}, action "
                            f"{action_space.type}{list(action_space.shape)}"
                            + (f", recurrent ({metadata.get('recurrent')}, state_size {state_size}: send the state "
                               "back with the next observation)" if state_size else "")
                            + (f", masked (action_mask of {mask_width} entries: the action is a valid one; "
                               "without a mask every action is valid)" if mask_width else "")
                            + ". Errors are JSON {\"error\": \"...\"}."),
            "x-keras-trpo-metadata": metadata,
        },
        "paths": {
            "/v1/act": {"post": {
                "operationId": "act", "summary": "Actions for one observation or a batch",
                "requestBody": {"required": True, "content": {"application/json": {"schema": act_request}}},
                "responses": {"200": _json(act_response, "the action(s)"),
                              **_errors("400", *auth, "408", "413", "422", "500", "503")},
                **secured}},
            "/v1/metadata": {"get": {
                "operationId": "metadata", "summary": "The model's metadata: spaces, env id, versions",
                "responses": {"200": _json(metadata_schema, "the export's metadata"), **_errors(*auth, "503")},
                **secured}},
            "/healthz": {"get": {
                "operationId": "health", "summary": "Liveness (needs no token)",
                "responses": {"200": _json({"type": "object", "required": ["status"],
                                            "properties": {"status": {"const": "ok"}}}, "alive"),
                              **_errors("503")},
                "security": []}},
            "/metrics": {"get": {
                "operationId": "metrics", "summary": "Prometheus metrics (text format 0.0.4)",
                "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_errors(*auth, "503")},
                **secured}},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": {"200": _json({"type": "object"}, "the OpenAPI document"), **_errors(*auth, "503")},
                **secured}},
        },
        "components": {"schemas": {
            "Observation": obs, "Action": act,
            "Noise": noise_schema(str(metadata.get("distribution")), noise_width or 1),
            **({"State": state_schema(state_size)} if state_size else {}),
            **({"ActionMask": mask_schema(action_space, mask_width)} if mask_width else {}),
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        }},
    }
    if authenticated:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc
