"""Action masks over HTTP (issue 29): POST /v1/act with "action_mask", on the real server (uvicorn),
with the hand-built masked files of make_fixtures.py --masked. Bad masks get 422 naming the problem
and the server keeps answering; batched requests keep their own masks; the OpenAPI document's
ActionMask allows exactly the masks the server takes."""
import http.client
import itertools
import threading

import numpy as np
import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.server import make_server
from keras_trpo_serving.tests.conftest import fixture_path
from keras_trpo_serving.tests.test_masks import is_valid, observations, random_masks
from keras_trpo_serving.tests.test_server import request, running


@pytest.fixture(scope="module")
def taxi():
    policy = OnnxPolicy(fixture_path("masked_taxi"), seed=0)
    with running(make_server(policy, "127.0.0.1", 0, max_body_bytes=1 << 20)) as srv:
        yield srv, policy


def act(srv, body):
    return request(srv, "POST", "/v1/act", body)


def test_masked_requests_get_valid_actions(taxi):
    srv, policy = taxi
    rng = np.random.default_rng(4)
    obs, masks = observations("masked_taxi", rng, 400), random_masks("masked_taxi", rng, 400)
    # one observation, 0/1 and booleans
    for i in range(20):
        for mask in (masks[i].astype(int).tolist(), masks[i].tolist()):
            status, body = act(srv, {"obs": int(obs[i]), "action_mask": mask})
            assert status == 200 and is_valid("masked_taxi", body["action"], masks[i])
            assert body["action"] == policy.act(obs[i], action_mask=masks[i])
    # a batch, sampled: every row valid, and the request's own answer is reproducible from its seed
    body = {"obs": obs.astype(int).tolist(), "action_mask": masks.astype(int).tolist(), "seed": 11}
    status, out = act(srv, body)
    assert status == 200 and all(is_valid("masked_taxi", a, m) for a, m in zip(out["action"], masks))
    assert act(srv, body)[1] == out
    np.testing.assert_array_equal(out["action"], policy.act(obs, deterministic=False, rng=np.random.default_rng(11),
                                                            action_mask=masks))
    # without a mask: every action valid, the same answer as an all-ones mask
    assert act(srv, {"obs": 7})[1] == act(srv, {"obs": 7, "action_mask": [1] * 6})[1]


BAD = [  # (body, words the 422's message must contain)
    ({"obs": 3, "action_mask": [1, 1, 0]}, "shape (3,)"),
    ({"obs": 3, "action_mask": [1, 2, 0, 0, 0, 0]}, "must be 0 or 1"),
    ({"obs": 3, "action_mask": [1, 0.5, 0, 0, 0, 0]}, "must be 0 or 1"),
    ({"obs": 3, "action_mask": [0, 0, 0, 0, 0, 0]}, "no valid action"),
    ({"obs": 3, "action_mask": [False] * 6}, "no valid action"),
    ({"obs": 3, "action_mask": ["1", 0, 0, 0, 0, 0]}, "dtype"),
    ({"obs": 3, "action_mask": [None, 1, 0, 0, 0, 0]}, "dtype"),
    ({"obs": 3, "action_mask": None}, "got null"),
    ({"obs": 3, "action_mask": {"a": 1}}, "must be an array"),
    ({"obs": 3, "action_mask": []}, "shape (0,)"),
    ({"obs": 3, "action_mask": [[1, 0, 0, 0, 0, 0]]}, "one observation's action_mask"),
    ({"obs": [3, 4], "action_mask": [1, 0, 0, 0, 0, 0]}, "one action_mask row per observation"),
    ({"obs": [3, 4], "action_mask": [[1, 0, 0, 0, 0, 0]]}, "shape (1, 6)"),
    ({"obs": [3, 4], "action_mask": [[1, 0, 0, 0, 0, 0], [1, 0]]}, "rectangular"),
    ({"obs": [], "action_mask": [[1, 0, 0, 0, 0, 0]]}, "empty batch"),
    ({"obs": 3, "action_mask": [1, 0, 0, 0, 0, 0], "noise": [0.5] * 5}, "noise"),
]


@pytest.mark.parametrize("body, words", BAD)
def test_bad_masks_get_422_naming_the_problem_and_the_server_keeps_serving(taxi, body, words):
    srv, _ = taxi
    status, answer = act(srv, body)
    assert status == 422 and words.lower() in answer["error"].lower(), answer
    assert act(srv, {"obs": 3, "action_mask": [0, 0, 0, 1, 0, 0]}) == (200, {"action": 3})
    assert request(srv, "GET", "/healthz") == (200, {"status": "ok"})


def test_nan_in_a_mask_is_refused_before_the_policy_sees_it(taxi):
    srv, _ = taxi
    status, answer = request(srv, "POST", "/v1/act", raw=b'{"obs": 3, "action_mask": [1, NaN, 0, 0, 0, 0]}')
    assert status == 400 and "NaN" in answer["error"]
    assert act(srv, {"obs": 3})[0] == 200


@pytest.mark.parametrize("name", ["linear_discrete", "stateful_recurrent"])
def test_a_mask_to_a_policy_exported_without_one_is_422(name):
    policy = OnnxPolicy(fixture_path(name))
    obs = [0.0] * policy.obs_shape[0]
    with running(make_server(policy, "127.0.0.1", 0)) as srv:
        for body in ({"obs": obs, "action_mask": [1, 1]}, {"obs": [obs], "action_mask": [[1, 1]]},
                     {"obs": [], "action_mask": []}):
            status, answer = act(srv, body)
            assert status == 422 and "without an 'action_mask' input" in answer["error"], answer
        assert act(srv, {"obs": obs})[0] == 200
        doc = request(srv, "GET", "/openapi.json")[1]
    assert "action_mask" not in doc["paths"]["/v1/act"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["properties"]


def test_a_recurrent_masked_policy_over_http():
    policy = OnnxPolicy(fixture_path("masked_recurrent"), seed=0)
    rng = np.random.default_rng(6)
    obs, masks = observations("masked_recurrent", rng, 30), random_masks("masked_recurrent", rng, 30)
    with running(make_server(policy, "127.0.0.1", 0)) as srv:
        state, want_state = None, None
        for t in range(30):
            body = {"obs": obs[t].tolist(), "action_mask": masks[t].astype(int).tolist()}
            if state is not None:
                body["state"] = state
            status, out = act(srv, body)
            want, want_state = policy.step(obs[t], want_state, action_mask=masks[t])
            assert status == 200 and out["action"] == want and is_valid("masked_recurrent", out["action"], masks[t])
            np.testing.assert_array_equal(np.float32(out["state"]), want_state)
            state = out["state"]
        status, out = act(srv, {"obs": obs[:4].tolist(), "state": [[0.0] * 4] * 4, "deterministic": False, "seed": 2,
                                "action_mask": masks[:4].astype(int).tolist()})
        assert status == 200 and all(is_valid("masked_recurrent", a, m) for a, m in zip(out["action"], masks[:4]))


@pytest.mark.parametrize("name", ["masked_taxi", "masked_recurrent"])
def test_batched_requests_keep_their_own_masks(name):
    """Concurrent masked and unmasked requests gathered into one call: each answer is its own, alone."""
    policy = OnnxPolicy(fixture_path(name), seed=0)
    rng = np.random.default_rng(7)
    n = 96
    obs, masks = observations(name, rng, n), random_masks(name, rng, n)

    def body(i):
        b = {"obs": obs[i].tolist()}
        if i % 3:  # two in three requests masked, the others all valid
            b["action_mask"] = masks[i].astype(int).tolist()
        return b

    def alone(i):
        policy.reset()
        return policy.step(obs[i], None, action_mask=masks[i] if i % 3 else None)[0].tolist()

    answers = [None] * n
    with running(make_server(policy, "127.0.0.1", 0, batch_max=8, batch_wait_us=3000)) as srv:
        def client(rows):
            conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
            for i in rows:
                status, out = request(srv, "POST", "/v1/act", body(i), conn=conn)
                assert status == 200, out
                answers[i] = out["action"]
            conn.close()

        threads = [threading.Thread(target=client, args=(range(k, n, 8),)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        batches = srv.metrics.batch_requests.collect()[0].samples
    assert answers == [alone(i) for i in range(n)]
    assert all(is_valid(name, answers[i], masks[i]) for i in range(n) if i % 3)
    count = next(s.value for s in batches if s.name.endswith("_count"))
    assert count < n  # some requests shared a call


def test_a_batched_server_answers_a_bad_mask_with_422_alone():
    policy = OnnxPolicy(fixture_path("masked_taxi"), seed=0)
    with running(make_server(policy, "127.0.0.1", 0, batch_max=4, batch_wait_us=1000)) as srv:
        assert act(srv, {"obs": 3, "action_mask": [0] * 6})[0] == 422
        assert act(srv, {"obs": 3, "action_mask": [0, 0, 0, 1, 0, 0]}) == (200, {"action": 3})


@pytest.mark.parametrize("name", ["masked_taxi", "masked_multidiscrete", "masked_multibinary"])
def test_the_openapi_action_mask_allows_exactly_the_masks_the_server_takes(name):
    """Every 0/1 mask of the policy's width: valid against the document's ActionMask iff the policy
    takes it (each sub-space or bit with something allowed)."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    policy = OnnxPolicy(fixture_path(name))
    with running(make_server(policy, "127.0.0.1", 0)) as srv:
        doc = request(srv, "GET", "/openapi.json")[1]
    request_schema = doc["paths"]["/v1/act"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema["properties"]["action_mask"]["$ref"] == "#/components/schemas/ActionMask"
    validator = jsonschema_rs.validator_for(doc["components"]["schemas"]["ActionMask"])
    obs = observations(name, np.random.default_rng(0), 1)[0]
    for bits in itertools.product([0, 1], repeat=policy.mask_width):
        try:
            policy.act(obs, action_mask=list(bits))
            taken = True
        except ValueError:
            taken = False
        assert validator.is_valid(list(bits)) == taken, bits
        assert validator.is_valid([bool(b) for b in bits]) == taken, bits
    assert not validator.is_valid([2] + [1] * (policy.mask_width - 1))
    assert not validator.is_valid([1] * (policy.mask_width + 1))


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_a_real_masked_export_over_http(fmt):
    """The exporter's Taxi-v4 policy (tests/make_masked_serving_fixtures.py) on both runtimes: the
    agent's own actions under the env's masks, sampled ones valid."""
    if fmt == "tflite":
        pytest.importorskip("ai_edge_litert")
    from keras_trpo_serving.tests.test_masks_real import load

    policy, ref = load("taxi", fmt)
    with running(make_server(policy, "127.0.0.1", 0, max_body_bytes=1 << 20)) as srv:
        status, out = act(srv, {"obs": ref["obs"].astype(int).tolist(), "action_mask": ref["mask"].astype(int).tolist()})
        assert status == 200 and out["action"] == ref["action"].tolist()
        status, out = act(srv, {"obs": int(ref["obs"][0]), "action_mask": ref["mask"][0].tolist(),
                                "noise": ref["noise"][0].tolist()})
        assert status == 200 and out["action"] == int(ref["sampled_action"][0])
        assert act(srv, {"obs": 0, "action_mask": [0] * 6})[0] == 422
        assert act(srv, {"obs": 0})[0] == 200
