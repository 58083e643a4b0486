"""The HTTP server with recurrent and Dict-observation policies (the stateful_* fixtures): stateless
requests carrying the state, Dict observations as JSON objects, every bad request a 4xx naming the
problem while the server keeps serving, and dynamic batching with each row's own state."""
import json
import os

import numpy as np
import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.server import make_server
from keras_trpo_serving.tests.conftest import FIXTURES
from keras_trpo_serving.tests.test_server import request, running
from keras_trpo_serving.tests.test_stateful import dict_features, episode, rdict, rnn


def load(name, **kw):
    return OnnxPolicy(os.path.join(FIXTURES, f"{name}.onnx"), **kw)


@pytest.fixture(scope="module")
def rnn_server():
    with running(make_server(load("stateful_recurrent", seed=0), "127.0.0.1", 0, max_body_bytes=4096)) as srv:
        yield srv


@pytest.fixture(scope="module")
def dict_server():
    with running(make_server(load("stateful_recurrent_dict", seed=0), "127.0.0.1", 0, max_body_bytes=4096)) as srv:
        yield srv


def act(srv, body):
    return request(srv, "POST", "/v1/act", body)


def test_an_episode_over_http_carries_the_state_the_client_sends(rnn_server):
    """The client keeps the state: answers equal the NumPy RNN with zeros at each episode start,
    whether the start is sent as episode_start or by leaving the state out."""
    obs, start = episode(seed=3)
    h = np.zeros((1, 4), np.float32)
    state = None
    for t in range(len(obs)):
        if start[t]:
            h = np.zeros_like(h)
        logits, h = rnn(obs[t:t + 1], h)
        body = {"obs": obs[t].tolist()}
        if t % 2 and state is not None:  # alternate: a start as episode_start, or as no state at all
            body.update(state=state, episode_start=bool(start[t]))
        elif not start[t]:
            body["state"] = state
        status, answer = act(rnn_server, body)
        assert status == 200 and set(answer) == {"action", "state"}, answer
        assert answer["action"] == int(np.argmax(logits[0])), t
        np.testing.assert_allclose(answer["state"], h[0], atol=1e-5)
        state = answer["state"]


def test_a_batch_takes_one_state_row_per_observation(rnn_server):
    rng = np.random.default_rng(4)
    obs, state = rng.normal(size=(3, 3)).astype(np.float32), rng.uniform(-1, 1, size=(3, 4)).astype(np.float32)
    status, answer = act(rnn_server, {"obs": obs.tolist(), "state": state.tolist(),
                                      "episode_start": [False, True, False]})
    assert status == 200
    h = state.copy()
    h[1] = 0
    logits, h2 = rnn(obs, h)
    assert answer["action"] == np.argmax(logits, axis=1).tolist()
    np.testing.assert_allclose(answer["state"], h2, atol=1e-5)
    status, answer = act(rnn_server, {"obs": obs.tolist()})  # no state: zeros for every row
    assert status == 200 and answer["action"] == np.argmax(rnn(obs, 0 * h)[0], axis=1).tolist()
    assert act(rnn_server, {"obs": []}) == (200, {"action": [], "state": []})


@pytest.mark.parametrize("body, status, words", [
    ({"obs": [0, 0, 0], "state": [0, 0, 0]}, 422, "state has shape (3,); one observation takes (4,) or (1, 4)"),
    ({"obs": [[0, 0, 0]] * 2, "state": [[0] * 4] * 3}, 422, "a batch of 2 takes (2, 4)"),
    ({"obs": [[0, 0, 0]] * 2, "state": [0] * 4}, 422, "a batch of 2 takes (2, 4)"),
    ({"obs": [0, 0, 0], "state": [0, 0, "x", 0]}, 422, "state has dtype"),
    ({"obs": [0, 0, 0], "state": [0, 0, True, 0]}, 422, "state contains true or false"),
    ({"obs": [0, 0, 0], "state": [0, 0, 1e39, 0]}, 422, "state contains NaN or inf"),
    ({"obs": [0, 0, 0], "state": None}, 400, '"state" must be an array'),
    ({"obs": [0, 0, 0], "state": 3}, 400, '"state" must be an array'),
    ({"obs": [0, 0, 0], "episode_start": "yes"}, 400, '"episode_start" must be true, false'),
    ({"obs": [0, 0, 0], "episode_start": [1]}, 400, '"episode_start" must be true, false'),
    ({"obs": [[0, 0, 0]] * 2, "episode_start": [True]}, 422, "episode_start has shape (1,); expected one per "
                                                              "observation: (2,)"),
    ({"obs": [], "state": [[0] * 4]}, 422, "an empty batch takes no state"),
    ({"obs": [0, 0, 0], "stat": [0] * 4}, 400, "unknown field(s) ['stat']"),
])
def test_bad_state_requests_get_4xx_naming_the_problem(rnn_server, body, status, words):
    got, answer = act(rnn_server, body)
    assert got == status and words in answer["error"], answer
    assert act(rnn_server, {"obs": [0, 0, 0]})[0] == 200  # still serving


def test_a_feed_forward_policy_refuses_a_state():
    with running(make_server(load("stateful_dict"), "127.0.0.1", 0)) as srv:
        status, answer = act(srv, {"obs": {"mode": 1, "pos": [0, 0]}, "state": [0]})
        assert status == 400 and "feed-forward: it takes no state" in answer["error"]
        status, answer = act(srv, {"obs": {"mode": 1, "pos": [0, 0]}})
        assert status == 200 and set(answer) == {"action"}


def test_dict_observations_are_json_objects_and_batches_lists_of_them(dict_server):
    rng = np.random.default_rng(5)
    mode, pos = np.array([3, 1]), rng.uniform(-1, 1, size=(2, 2)).astype(np.float32)
    h = rng.uniform(-1, 1, size=(2, 3)).astype(np.float32)
    logits, h2 = rdict(mode, pos, h)
    status, one = act(dict_server, {"obs": {"pos": pos[0].tolist(), "mode": 3}, "state": h[0].tolist()})
    assert status == 200 and one["action"] == int(np.argmax(logits[0]))
    np.testing.assert_allclose(one["state"], h2[0], atol=1e-5)
    rows = [{"mode": int(m), "pos": p.tolist()} for m, p in zip(mode, pos)]
    status, batch = act(dict_server, {"obs": rows, "state": h.tolist()})
    assert status == 200 and batch["action"] == np.argmax(logits, axis=1).tolist()
    np.testing.assert_allclose(batch["state"], h2, atol=1e-5)
    # sampled with the caller's noise: the Gumbel-max of the NumPy logits
    u = [0.3, 0.9]
    status, sampled = act(dict_server, {"obs": rows[0], "state": h[0].tolist(), "noise": u})
    expected = np.argmax(logits[0] - np.log(-np.log(np.float32(u) + np.float32(1e-20)) + np.float32(1e-20)))
    assert status == 200 and sampled["action"] == int(expected)
    np.testing.assert_allclose(sampled["state"], h2[0], atol=1e-5)


@pytest.mark.parametrize("obs, status, words", [
    ({"pos": [0, 0]}, 422, "lacks the key(s) ['mode']"),
    ({"mode": 1, "pos": [0, 0], "x": 1}, 422, "unknown key(s) ['x']"),
    ({"mode": 0, "pos": [0, 0]}, 422, "observation 'mode' must be an integer in [1, 3]"),
    ({"mode": 1, "pos": [0]}, 422, "observation 'pos' has shape (1,)"),
    ({"mode": True, "pos": [0, 0]}, 422, "observation contains true or false"),
    ({"mode": 1, "pos": [0, 1e39]}, 400, "observation 'pos' contains NaN or inf"),
    ([{"mode": 1, "pos": [0, 0]}, [1, 0, 0]], 422, "observation 1 is an array"),
    ([{"mode": 1, "pos": [0, 0]}, {"mode": 1}], 422, "observation 1 lacks the key(s) ['pos']"),
    ([0, 0, 0], 422, "observation 0 is a number"),
    ("hello", 422, "mapping of the keys"),
])
def test_bad_dict_observations_get_4xx_naming_the_key(dict_server, obs, status, words):
    got, answer = act(dict_server, {"obs": obs})
    assert got == status and words in answer["error"], answer
    assert act(dict_server, {"obs": {"mode": 1, "pos": [0, 0]}})[0] == 200


@pytest.mark.parametrize("name", ["stateful_recurrent", "stateful_recurrent_dict", "stateful_dict"])
def test_batched_stateful_and_dict_answers_are_the_unbatched_ones(name):
    """With --batch-max, concurrent requests (each row with its own state, some starting an
    episode, single observations and batches of 3) share policy calls, and every answer is
    bit-identical to the request's own step()."""
    from concurrent.futures import ThreadPoolExecutor

    policy = load(name)
    rng = np.random.default_rng(7)
    n = 96
    if policy.obs_keys:
        obs = [{"mode": int(m), "pos": p.tolist()} for m, p in zip(rng.integers(1, 4, n), rng.uniform(-1, 1, (n, 2)))]
    else:
        obs = rng.normal(size=(n, 3)).astype(np.float32).tolist()
    size = policy.state_size
    states = rng.uniform(-1, 1, size=(n, size)).astype(np.float32).tolist()
    starts = (rng.random(n) < 0.3).tolist()

    def body(i):
        if i % 4 == 3:  # a batch of three rows
            b = {"obs": obs[i - 2:i + 1]}
            if size:
                b.update(state=states[i - 2:i + 1], episode_start=starts[i - 2:i + 1])
            return b
        b = {"obs": obs[i]}
        if size:
            b.update(state=states[i], episode_start=starts[i])
        return b

    def alone(b):
        o = b["obs"]
        if policy.obs_keys:
            o = {k: ([r[k] for r in o] if isinstance(o, list) else o[k]) for k in policy.obs_keys}
        action, state = policy.step(o, b.get("state"), b.get("episode_start"))
        answer = {"action": np.asarray(action).tolist()}
        if size:
            answer["state"] = state.tolist()
        return answer

    with running(make_server(policy, "127.0.0.1", 0, batch_max=8, batch_wait_us=5000)) as srv:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda i: act(srv, body(i)), range(n)))
        batches = srv.metrics.batch_requests.collect()[0].samples
    for i, (status, answer) in enumerate(answers):
        assert status == 200 and answer == alone(body(i)), i  # json floats round-trip: bit-identity
    count = next(x.value for x in batches if x.name.endswith("_count"))
    assert count < n  # some requests shared a call


def test_openapi_describes_state_and_dict_observations(dict_server):
    status, doc = request(dict_server, "GET", "/openapi.json")
    schemas = doc["components"]["schemas"]
    assert schemas["State"]["minItems"] == schemas["State"]["maxItems"] == 3
    assert schemas["Observation"]["type"] == "object" and schemas["Observation"]["required"] == ["mode", "pos"]
    act_schema = doc["paths"]["/v1/act"]["post"]
    props = act_schema["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"state", "episode_start"} <= set(props)
    response = act_schema["responses"]["200"]["content"]["application/json"]["schema"]
    assert response["required"] == ["action", "state"]
    status, meta = request(dict_server, "GET", "/v1/metadata")
    assert meta["state_size"] == "3" and meta["observation_space"]["type"] == "Dict"
    assert json.loads(json.dumps(meta)) == meta
