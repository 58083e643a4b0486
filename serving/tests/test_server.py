"""The HTTP server: routes, bad input answered with 4xx while it keeps serving, concurrency."""
import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving import OnnxPolicy
from serving.server import make_server
from serving.tests.conftest import fixture_path, reference


@pytest.fixture(scope="module")
def server():
    policy = OnnxPolicy(fixture_path("gaussian"), seed=0)
    srv = make_server(policy, "127.0.0.1", 0, max_body_bytes=4096)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method, path, body=None, raw=None, headers=None, conn=None):
    own = conn is None
    conn = conn or http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = json.loads(resp.read() or b"null")
    if own:
        conn.close()
    return resp.status, payload


def test_health_and_metadata(server):
    assert request(server, "GET", "/healthz") == (200, {"status": "ok"})
    status, meta = request(server, "GET", "/v1/metadata")
    assert status == 200 and meta["distribution"] == "diag_gaussian" and meta["action_space"]["shape"] == [2]


def test_act_single_and_batch(server):
    ref = reference("gaussian")
    status, body = request(server, "POST", "/v1/act", {"obs": ref["obs"][0].tolist()})
    assert status == 200
    np.testing.assert_allclose(body["action"], ref["action"][0], atol=1e-5)
    status, body = request(server, "POST", "/v1/act", {"obs": ref["obs"][:10].tolist()})
    assert status == 200
    np.testing.assert_allclose(body["action"], ref["action"][:10], atol=1e-5)


def test_stochastic_request(server):
    status, body = request(server, "POST", "/v1/act", {"obs": [[0, 0, 0]] * 200, "deterministic": False})
    assert status == 200 and np.std(np.asarray(body["action"]), axis=0).min() > 0


@pytest.mark.parametrize("raw, status, fragment", [
    (b"{not json", 400, "not valid JSON"),
    (b'{"observation": [1, 2, 3]}', 400, '{"obs"'),
    (b'[1, 2, 3]', 400, '{"obs"'),
    (b'{"obs": [1, 2]}', 422, "expected (3,)"),
    (b'{"obs": [[1, 2, 3], [4, 5]]}', 422, "obs must be numbers"),
    (b'{"obs": ["a", "b", "c"]}', 422, "obs must be numbers"),
    (b'{"obs": [1, NaN, 3]}', 422, "NaN"),
    (b'{"obs": [1, Infinity, 3]}', 422, "Infinity"),
    (b'{"obs": [1, 1e999, 3]}', 422, "NaN or inf"),
    (b'{"obs": [1, 2, 3], "deterministic": "yes"}', 400, "deterministic"),
])
def test_bad_requests_get_4xx_and_server_keeps_serving(server, raw, status, fragment):
    got, body = request(server, "POST", "/v1/act", raw=raw)
    assert got == status and fragment in body["error"]
    assert request(server, "GET", "/healthz")[0] == 200


def test_body_size_limit(server):
    big = json.dumps({"obs": [[0.0, 0.0, 0.0]] * 1000}).encode()
    assert len(big) > 4096
    status, body = request(server, "POST", "/v1/act", raw=big)
    assert status == 413 and "over the limit" in body["error"]
    assert request(server, "GET", "/healthz")[0] == 200


def test_unknown_routes(server):
    assert request(server, "GET", "/v2/act")[0] == 404
    assert request(server, "POST", "/v1/metadata", {"obs": [0, 0, 0]})[0] == 404


def test_keep_alive_connection_serves_many_requests(server):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    for i in range(20):
        status, _ = request(server, "POST", "/v1/act", {"obs": [i, 0, 0]}, conn=conn)
        assert status == 200
    conn.close()


def test_concurrent_clients_get_their_own_answers(server):
    policy = OnnxPolicy(fixture_path("gaussian"))
    obs = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32) * 3
    expected = policy.act(obs)

    def client(rows):
        conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        out = []
        for i in rows:
            status, body = request(server, "POST", "/v1/act", {"obs": obs[i].tolist()}, conn=conn)
            out.append((i, status, body["action"]))
        conn.close()
        return out

    with ThreadPoolExecutor(8) as pool:
        results = [r for chunk in pool.map(client, np.array_split(np.arange(len(obs)), 8)) for r in chunk]
    assert len(results) == len(obs)
    for i, status, action in results:
        assert status == 200
        np.testing.assert_allclose(action, expected[i], atol=1e-5)
