"""The HTTP server: routes, bad input answered with 4xx while it keeps serving, limits, concurrency.

Bursts and the connection limit: test_server_limits.py; tokens: test_server_auth.py."""
import contextlib
import http.client
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.server import make_server
from keras_trpo_serving.tests.conftest import fixture_path, reference

LIMIT = 4096


def _strict(name):
    raise ValueError(f"server sent {name}, which is not JSON")


@contextlib.contextmanager
def running(srv):
    """``srv.serve_forever()`` in a thread; shut down and closed on exit."""
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert srv.started, "the server did not start"
    try:
        yield srv
    finally:
        # Stop, wait for uvicorn's shutdown (it closes every connection), then release the socket: closing
        # it first made the serving thread fail on a closed descriptor under load, leaving connections open.
        srv.shutdown()
        thread.join(30)
        srv.server_close()


@pytest.fixture(scope="module")
def server():
    policy = OnnxPolicy(fixture_path("gaussian"), seed=0)
    with running(make_server(policy, "127.0.0.1", 0, max_body_bytes=LIMIT, keep_alive_timeout=10)) as srv:
        yield srv


def request(srv, method, path, body=None, raw=None, headers=None, conn=None):
    own = conn is None
    conn = conn or http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers=headers or {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.getheader("Content-Type") == "application/json"
    payload = json.loads(resp.read() or b"null", parse_constant=_strict)
    if own:
        conn.close()
    return resp.status, payload


def raw_exchange(srv, data: bytes, half_close: bool = False) -> bytes:
    """Send bytes as they are (no http.client help) and read the whole answer; ``half_close``:
    then say that nothing more will come (shutdown SHUT_WR), as a client whose body was cut off."""
    with socket.create_connection(srv.server_address[:2], timeout=10) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_binds_loopback_and_an_ephemeral_port(server):
    host, port = server.server_address[:2]
    assert host == "127.0.0.1" and port > 0


def test_health_and_metadata(server):
    assert request(server, "GET", "/healthz") == (200, {"status": "ok"})
    status, meta = request(server, "GET", "/v1/metadata")  # parsed strictly: no Infinity tokens
    assert status == 200 and meta["distribution"] == "diag_gaussian" and meta["action_space"]["shape"] == [2]
    assert meta["observation_space"]["low"] == ["-inf"] * 3 and meta["keras_trpo_version"]


def test_act_single_and_batch(server):
    ref = reference("gaussian")
    status, body = request(server, "POST", "/v1/act", {"obs": ref["obs"][0].tolist()})
    assert status == 200 and len(body["action"]) == 2
    np.testing.assert_allclose(body["action"], ref["action"][0], atol=1e-5)
    status, body = request(server, "POST", "/v1/act", {"obs": ref["obs"][:10].tolist()})
    assert status == 200
    np.testing.assert_allclose(body["action"], ref["action"][:10], atol=1e-5)
    status, body = request(server, "POST", "/v1/act", {"obs": []})  # an empty batch
    assert status == 422 or (status == 200 and body["action"] == [])


def test_discrete_action_is_a_json_integer():
    policy = OnnxPolicy(fixture_path("linear_discrete"))
    with running(make_server(policy, "127.0.0.1", 0)) as srv:
        obs = [0.3, -0.2, 0.1, 0.05]
        status, body = request(srv, "POST", "/v1/act", {"obs": obs})
        assert status == 200 and isinstance(body["action"], int) and body["action"] == policy.act(obs)
        status, body = request(srv, "POST", "/v1/act", {"obs": [obs, obs]})
        assert body["action"] == [int(policy.act(obs))] * 2


def test_stochastic_request(server):
    status, body = request(server, "POST", "/v1/act", {"obs": [[0, 0, 0]] * 200, "deterministic": False})
    assert status == 200 and np.std(np.asarray(body["action"]), axis=0).min() > 0


@pytest.mark.parametrize("raw, status, fragment", [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b'{"observation": [1, 2, 3]}', 400, '{"obs"'),
    (b'[1, 2, 3]', 400, '{"obs"'),
    (b'{"obs": [1, NaN, 3]}', 400, "NaN"),
    (b'{"obs": [1, Infinity, 3]}', 400, "Infinity"),
    (b'{"obs": [[1, 2, 3], [1, -Infinity, 3]]}', 400, "-Infinity"),
    (b'{"obs": [1, 1e999, 3]}', 400, "NaN or inf"),
    (b'{"obs": [1, 2, 3], "deterministic": "yes"}', 400, "deterministic"),
    (b'{"obs": [1, 2]}', 422, "expected (3,)"),
    (b'{"obs": [[1, 2, 3, 4]]}', 422, "(batch, 3)"),
    (b'{"obs": [[1, 2, 3], [4, 5]]}', 422, "not a rectangular array"),
    (b'{"obs": ["a", "b", "c"]}', 422, "expected numbers"),
    (b'{"obs": [1, null, 3]}', 422, "expected numbers"),
    (b'{"obs": {"x": 1}}', 422, "expected numbers"),
    # wrong types
    (b'null', 400, '{"obs"'),
    (b'"obs"', 400, '{"obs"'),
    (b'{"obs": true}', 422, "true or false"),
    (b'{"obs": [1, false, 3]}', 422, "true or false"),
    (b'{"obs": [[1, 2, 3], [1, 2, true]]}', 422, "true or false"),
    (b'{"obs": "1, 2, 3"}', 422, "expected numbers"),
    (b'{"obs": null}', 422, "expected numbers"),
    (b'{"obs": [1, 2, 3], "deterministic": 1}', 400, "deterministic"),
    (b'{"obs": [1, 2, 3], "deterministic": null}', 400, "deterministic"),
    # ambiguous or misspelt fields: never a silent default
    (b'{"obs": [1, 2, 3], "determinstic": false}', 400, "unknown field(s) ['determinstic']"),
    (b'{"obs": [1, 2, 3], "obs": [4, 5]}', 400, "key 'obs' twice"),
    # not JSON at all
    (b"", 400, "not valid JSON"),
    (b"obs=1,2,3", 400, "not valid JSON"),
    (b'{"obs": [1, 2, 3]} trailing', 400, "Extra data"),
    (b'{"obs": [1, 2, 3]', 400, "not valid JSON"),
    (b'{"obs": ' + b"[" * 200 + b"1" + b"]" * 200 + b"}", 422, "observation"),  # parses; numpy refuses 200 dims
    (b'{"obs": [1, 2, -' + b"9" * 60 + b"]}", 400, "beyond float32"),
    (b'{"obs": [1, 2, 1e400]}', 400, "NaN or inf"),
])
def test_bad_requests_get_4xx_and_server_keeps_serving(server, raw, status, fragment):
    got, body = request(server, "POST", "/v1/act", raw=raw)
    assert got == status and fragment in body["error"], body
    assert request(server, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("raw, fragment", [
    # deep nesting: json raised RecursionError, answered 500
    (b"[" * 100_000 + b"]" * 100_000, "too deeply"),
    (b'{"obs": ' + b"[" * 3000 + b"1" + b"]" * 3000 + b"}", "too deeply"),
    (b'{"obs": [1, 2, 3], "x": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}", "too deeply"),
    # a 5000-digit integer: json raised ValueError (Python's int digit limit), answered 500
    (b'{"obs": [1, 2, ' + b"9" * 5000 + b"]}", "beyond float32"),
])
def test_bodies_that_broke_the_json_parser_get_400(raw, fragment):
    with running(make_server(OnnxPolicy(fixture_path("gaussian")), "127.0.0.1", 0)) as srv:  # 1 MiB limit
        conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
        got, body = request(srv, "POST", "/v1/act", raw=raw, conn=conn)
        assert got == 400 and fragment in body["error"], body
        assert request(srv, "POST", "/v1/act", {"obs": [1, 2, 3]}, conn=conn)[0] == 200  # same connection
        conn.close()


def test_big_integers_and_other_encodings_are_still_observations(server):
    status, body = request(server, "POST", "/v1/act", raw=b'{"obs": [1, 2, 30000000000000000000]}')
    assert status == 200 and len(body["action"]) == 2  # 20 digits: parsed as a float, within float32
    status, body = request(server, "POST", "/v1/act", raw='{"obs": [1, 2, 3]}'.encode("utf-16"))
    assert status == 200  # RFC 8259 JSON may be UTF-16; json.loads detects it
    # the Content-Type is not checked: `curl -d` sends application/x-www-form-urlencoded
    status, _ = request(server, "POST", "/v1/act", {"obs": [1, 2, 3]},
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200


def test_bad_request_on_a_kept_alive_connection_does_not_break_it(server):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    assert request(server, "POST", "/v1/act", raw=b'{"obs": [1, NaN, 3]}', conn=conn)[0] == 400
    assert request(server, "POST", "/v1/act", {"obs": [1, 2]}, conn=conn)[0] == 422
    assert request(server, "POST", "/v1/act", {"obs": [1, 2, 3]}, conn=conn)[0] == 200
    conn.close()


def test_body_size_limit(server):
    big = json.dumps({"obs": [[0.0, 0.0, 0.0]] * 1000}).encode()
    assert LIMIT < len(big) < 8 * LIMIT  # drained, so even a client that sends it all reads the 413
    status, body = request(server, "POST", "/v1/act", raw=big)
    assert status == 413 and "over the limit of 4096" in body["error"]
    assert request(server, "GET", "/healthz")[0] == 200


def test_huge_declared_body_is_refused_before_it_is_read(server):
    answer = raw_exchange(server, b"POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413") and b"over the limit" in answer
    assert request(server, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("head, status", [
    (b"POST /v1/act HTTP/1.1\r\nHost: x\r\n\r\n", b"411"),  # no Content-Length, not chunked
    (b"PUT /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405"),
    (b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
])
def test_malformed_requests_get_a_json_error(server, head, status):
    answer = raw_exchange(server, head, half_close=True)
    assert answer.split(b" ", 2)[1] == status, answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert request(server, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("head", [
    b"POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",  # over --max-header-bytes
    b"POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\nContent-Length: 5\r\n\r\n"
    b'{"obs": [1, 2, 3]}',  # which one? refused rather than guessed
    b"GARBAGE\r\n\r\n",
])
def test_unparseable_http_gets_uvicorns_400_and_the_server_keeps_serving(server, head):
    # The HTTP parser (h11) refuses these before the app sees them: uvicorn answers 400 in plain
    # text and closes the connection. Framing is the library's job now, not ours.
    answer = raw_exchange(server, head, half_close=True)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert request(server, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("length", [b"", b"Content-Length: 18\r\n"])
def test_a_chunked_body_is_read_like_any_other(server, length):
    # With Content-Length too, Transfer-Encoding wins (RFC 9112 section 6.3), as h11 implements it.
    answer = raw_exchange(server, b"POST /v1/act HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" + length +
                                  b"Connection: close\r\n\r\n12\r\n{\"obs\": [1, 2, 3]}\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and b'"action"' in answer, answer


def test_a_chunked_body_over_the_limit_gets_413(server):
    chunk = b"[" + b"0, " * 3000 + b"0]"
    answer = raw_exchange(server, b"POST /v1/act HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  + b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk), half_close=True)
    assert answer.startswith(b"HTTP/1.1 413") and b"over the limit" in answer, answer[:300]


def test_a_body_cut_off_by_the_client_is_dropped_and_the_server_keeps_serving(server):
    # The client says it will send 100 bytes, sends 18 and shuts its side: nobody is left to answer.
    answer = raw_exchange(server, b'POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"obs": [1, 2, 3]}',
                          half_close=True)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer
    assert request(server, "GET", "/healthz")[0] == 200


def test_a_body_that_stops_arriving_gets_408_after_the_body_timeout():
    with running(make_server(OnnxPolicy(fixture_path("gaussian")), "127.0.0.1", 0, body_timeout=0.3)) as srv:
        with socket.create_connection(srv.server_address[:2], timeout=10) as s:
            s.sendall(b'POST /v1/act HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"obs": [1,')
            answer = b"".join(iter(lambda: s.recv(65536), b""))  # the server closes after answering
        assert answer.startswith(b"HTTP/1.1 408") and b"connection: close" in answer.lower()
        assert "stopped arriving" in json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
        assert request(srv, "GET", "/healthz")[0] == 200


def test_a_get_body_is_not_taken_for_the_next_request(server):
    answer = raw_exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                                  b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and answer.count(b'{"status": "ok"}') == 2, answer


def test_unknown_routes(server):
    assert request(server, "GET", "/v2/act")[0] == 404
    assert request(server, "POST", "/v1/metadata", {"obs": [0, 0, 0]})[0] == 405  # the route exists, not the method
    assert request(server, "GET", "/v1/act")[0] == 405
    assert request(server, "POST", "/v1/act/", {"obs": [0, 0, 0]})[0] == 404  # no redirect either
    assert request(server, "GET", "/healthz?probe=1")[0] == 200


def test_keep_alive_connection_serves_many_requests(server):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    for i in range(20):
        status, _ = request(server, "POST", "/v1/act", {"obs": [i, 0, 0]}, conn=conn)
        assert status == 200
    conn.close()


def test_concurrent_clients_get_their_own_answers(server):
    policy = OnnxPolicy(fixture_path("gaussian"))
    obs = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32) * 3  # distinct observations
    expected = policy.act(obs)

    def client(rows):
        conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
        out = []
        for k, i in enumerate(rows):
            if k % 10 == 5:  # stochastic and bad requests interleaved: they must not disturb the rest
                assert request(server, "POST", "/v1/act", {"obs": [[0, 0, 0]] * 4, "deterministic": False},
                               conn=conn)[0] == 200
                assert request(server, "POST", "/v1/act", {"obs": [0, 0]}, conn=conn)[0] == 422
            status, body = request(server, "POST", "/v1/act", {"obs": obs[i].tolist()}, conn=conn)
            out.append((i, status, body["action"]))
        conn.close()
        return out

    with ThreadPoolExecutor(8) as pool:  # 8 threads x 50 requests
        results = [r for chunk in pool.map(client, np.array_split(np.arange(len(obs)), 8)) for r in chunk]
    assert sorted(i for i, _, _ in results) == list(range(len(obs)))
    for i, status, action in results:
        assert status == 200
        np.testing.assert_allclose(action, expected[i], atol=1e-5)


def test_make_server_checks_its_limits():
    policy = OnnxPolicy(fixture_path("linear_discrete"))
    with pytest.raises(ValueError, match="max_body_bytes"):
        make_server(policy, "127.0.0.1", 0, max_body_bytes=0)
    with pytest.raises(ValueError, match="keep_alive_timeout"):
        make_server(policy, "127.0.0.1", 0, keep_alive_timeout=0)
    with pytest.raises(ValueError, match="body_timeout"):
        make_server(policy, "127.0.0.1", 0, body_timeout=float("nan"))
    with pytest.raises(ValueError, match="max_concurrency"):
        make_server(policy, "127.0.0.1", 0, max_concurrency=0)
    with pytest.raises(ValueError, match="batch_max"):
        make_server(policy, "127.0.0.1", 0, batch_max=-1)
    with pytest.raises(ValueError, match="http"):
        make_server(policy, "127.0.0.1", 0, http="h2")
    with pytest.raises(ValueError, match="backlog"):
        make_server(policy, "127.0.0.1", 0, backlog=0)
    with pytest.raises(ValueError, match="token"):
        make_server(policy, "127.0.0.1", 0, token="has space")
