"""Dynamic batching: concurrent requests computed in one onnxruntime call, each answer exactly the
unbatched one; the batch sizes show in /metrics."""
import http.client
import json
import threading

import numpy as np
import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.tests.conftest import fixture_path
from keras_trpo_serving.tests.test_server import request, running
from keras_trpo_serving.server import make_server


@pytest.mark.parametrize("name", ["gaussian", "discrete", "multidiscrete", "discrete_obs"])
def test_batched_answers_are_bit_identical_to_unbatched_ones(name):
    policy = OnnxPolicy(fixture_path(name), seed=0)
    space = policy.observation_space
    rng = np.random.default_rng(1)
    obs = (rng.integers(0, space.n, size=(256,)) if space.type == "Discrete"
           else rng.normal(size=(256, *policy.obs_shape)) * 3).astype(np.float32)
    singles = [policy.act(o) for o in obs]  # computed alone: the reference
    answers = [None] * len(obs)
    with running(make_server(policy, "127.0.0.1", 0, batch_max=16, batch_wait_us=2000)) as srv:
        def client(rows):
            conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
            for i in rows:
                status, body = request(srv, "POST", "/v1/act", {"obs": obs[i].tolist()}, conn=conn)
                assert status == 200
                answers[i] = body["action"]
            conn.close()

        threads = [threading.Thread(target=client, args=(range(k, len(obs), 16),)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        batches = srv.metrics.batch_requests.collect()[0].samples
    for i, single in enumerate(singles):
        # json floats round-trip exactly: equality here is bit-identity of the float32 values
        assert answers[i] == single.tolist(), (i, answers[i], single)
    count = next(s.value for s in batches if s.name.endswith("_count"))
    total = next(s.value for s in batches if s.name.endswith("_sum"))
    assert total == len(obs) and count < len(obs)  # some requests shared a call


def test_batches_mix_single_observations_batches_and_bad_requests():
    policy = OnnxPolicy(fixture_path("gaussian"), seed=0)
    obs = np.random.default_rng(2).normal(size=(40, 3)).astype(np.float32)
    with running(make_server(policy, "127.0.0.1", 0, batch_max=8, batch_wait_us=5000)) as srv:
        results = {}

        def client(k):
            if k % 3 == 0:
                results[k] = request(srv, "POST", "/v1/act", {"obs": obs[k:k + 5].tolist()})
            elif k % 3 == 1:
                results[k] = request(srv, "POST", "/v1/act", {"obs": obs[k].tolist()})
            else:
                results[k] = request(srv, "POST", "/v1/act", {"obs": [1, 2]})  # 422, alone

        threads = [threading.Thread(target=client, args=(k,)) for k in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert request(srv, "POST", "/v1/act", {"obs": [[0, 0, 0]] * 3, "deterministic": False})[0] == 200
        assert request(srv, "POST", "/v1/act", {"obs": []}) == (200, {"action": []})  # an empty batch
    for k, (status, body) in results.items():
        if k % 3 == 0:
            assert status == 200 and body["action"] == policy.act(obs[k:k + 5]).tolist()
        elif k % 3 == 1:
            assert status == 200 and body["action"] == policy.act(obs[k]).tolist()
        else:
            assert status == 422


def test_batcher_alone():
    import asyncio

    from keras_trpo_serving.batching import Batcher

    calls = []

    def run(x):
        calls.append(len(x))
        return x * 2

    async def main():
        b = Batcher(run, max_requests=3, wait_s=0.05)
        outs = await asyncio.gather(*(b.submit(np.full((1, 2), i, np.float32)) for i in range(7)))
        return [o.tolist() for o in outs]

    assert asyncio.run(main()) == [[[2 * i, 2 * i]] for i in range(7)]
    assert calls == [3, 3, 1]  # full batches at once, the rest when the wait is over
