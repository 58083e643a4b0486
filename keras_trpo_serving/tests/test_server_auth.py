"""Bearer tokens (server and `python -m keras_trpo_serving http`), and the warning for a server exposed without one."""
import http.client
import logging
import os
import re
import subprocess
import sys

import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving import auth as auth_module
from keras_trpo_serving.auth import TOKEN_ENV, check_token, exposure_warning, load_token
from keras_trpo_serving.server import make_server
from keras_trpo_serving.tests.conftest import ROOT, fixture_path
from keras_trpo_serving.tests.test_server import running

TOKEN = "s3cret-token_0123456789abcdef"


@pytest.fixture(scope="module")
def server():
    with running(make_server(OnnxPolicy(fixture_path("gaussian"), seed=0), "127.0.0.1", 0, token=TOKEN)) as srv:
        yield srv


def _call(srv, method, path, auth=None, body=None, conn=None):
    own = conn is None
    conn = conn or http.client.HTTPConnection(*srv.server_address[:2], timeout=10)
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if own:
        conn.close()
    return resp, data


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/v1/metadata", None),
    ("POST", "/v1/act", b'{"obs": [1, 2, 3]}'),
    ("GET", "/no/such/route", None),  # no route map for strangers either
])
def test_missing_and_wrong_tokens_get_401(server, method, path, body):
    resp, data = _call(server, method, path, body=body)
    assert resp.status == 401 and resp.getheader("WWW-Authenticate") == 'Bearer realm="keras-trpo"'
    assert "Authorization: Bearer" in data.decode()
    for wrong in (f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}X", "Bearer x",
                  f"Bearer {TOKEN.upper()}"):
        resp, data = _call(server, method, path, wrong, body)
        assert resp.status == 401, wrong
        assert resp.getheader("WWW-Authenticate") == 'Bearer realm="keras-trpo", error="invalid_token"'
        assert TOKEN[:8] not in data.decode()  # neither token is echoed
    for not_bearer in (f"Basic {TOKEN}", TOKEN, "Bearer", "Bearer  "):
        resp, _ = _call(server, method, path, not_bearer, body)
        assert resp.status == 401 and resp.getheader("WWW-Authenticate") == 'Bearer realm="keras-trpo"'


def test_the_right_token_is_served(server):
    resp, _ = _call(server, "GET", "/v1/metadata", f"Bearer {TOKEN}")
    assert resp.status == 200
    resp, data = _call(server, "POST", "/v1/act", f"bearer {TOKEN}", b'{"obs": [1, 2, 3]}')  # scheme: any case
    assert resp.status == 200 and b'"action"' in data
    resp, _ = _call(server, "GET", "/no/such/route", f"Bearer {TOKEN}")
    assert resp.status == 404


def test_healthz_needs_no_token(server):
    resp, data = _call(server, "GET", "/healthz")
    assert resp.status == 200 and data == b'{"status": "ok"}'


def test_a_401_keeps_the_connection_usable(server):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=10)
    assert _call(server, "POST", "/v1/act", None, b'{"obs": [1, 2, 3]}', conn)[0].status == 401  # body drained
    assert _call(server, "POST", "/v1/act", "Bearer nope", b'{"obs": [1, 2, 3]}', conn)[0].status == 401
    assert _call(server, "POST", "/v1/act", f"Bearer {TOKEN}", b'{"obs": [1, 2, 3]}', conn)[0].status == 200
    conn.close()


def test_tokens_are_compared_in_constant_time(server, monkeypatch):
    calls = []

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    real = auth_module.hmac.compare_digest
    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    assert _call(server, "GET", "/v1/metadata", "Bearer wrong")[0].status == 401
    assert _call(server, "GET", "/v1/metadata", f"Bearer {TOKEN}")[0].status == 200
    assert len(calls) == 2
    # fixed-length digests: the comparison's time says nothing about the token's length either
    assert all(len(a) == len(b) == 32 for a, b in calls)


# ---------------------------------------------------------------------------- where the token comes from
def test_load_token_from_a_file_first_then_the_environment(tmp_path):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o600)
    assert load_token(str(f), {TOKEN_ENV: "other-token"}) == (TOKEN, f"--token-file {f}")  # the file wins
    assert load_token(None, {TOKEN_ENV: f" {TOKEN}\n"}) == (TOKEN, f"${TOKEN_ENV}")
    assert load_token(None, {}) == (None, None)


@pytest.mark.parametrize("content, fragment", [
    ("", "is empty"),
    ("\n\n", "is empty"),
    ("two words\n", "spaces"),
    ("tökén\n", "non-ASCII"),
])
def test_unusable_tokens_are_refused_without_showing_them(tmp_path, content, fragment):
    f = tmp_path / "token"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=fragment) as e:
        load_token(str(f), {})
    assert str(f) in str(e.value) and (not content.strip() or content.strip() not in str(e.value))


def test_a_missing_token_file_or_empty_variable_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read the token file .*nope"):
        load_token(str(tmp_path / "nope"), {})
    with pytest.raises(ValueError, match=f"{TOKEN_ENV} is empty"):
        load_token(None, {TOKEN_ENV: ""})
    assert check_token(TOKEN, "x") == TOKEN


def test_a_token_file_others_can_read_is_warned_about(tmp_path, caplog):
    f = tmp_path / "token"
    f.write_text(TOKEN)
    f.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="keras_trpo_serving.server"):
        assert load_token(str(f), {})[0] == TOKEN
    assert "readable by other users" in caplog.text and TOKEN not in caplog.text


# ---------------------------------------------------------------------------- exposure warning
@pytest.mark.parametrize("host, token_set, warns", [
    ("127.0.0.1", False, False),
    ("127.0.0.2", False, False),
    ("::1", False, False),
    ("0.0.0.0", False, True),
    ("192.168.1.10", False, True),
    ("::", False, True),
    ("0.0.0.0", True, False),
    ("not-an-address", False, True),
])
def test_exposure_warning_decides_on_the_bound_address(host, token_set, warns):
    message = exposure_warning(host, token_set)
    assert (message is not None) == warns
    if warns:
        assert host in message and "--token-file" in message and TOKEN_ENV in message


def test_binding_all_interfaces_without_a_token_logs_a_warning(caplog):
    policy = OnnxPolicy(fixture_path("linear_discrete"))
    with caplog.at_level(logging.WARNING, logger="keras_trpo_serving.server"):
        srv = make_server(policy, "0.0.0.0", 0)  # bound, never served: closed at once
        srv.server_close()
    assert "0.0.0.0 without a token" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keras_trpo_serving.server"):
        srv = make_server(policy, "0.0.0.0", 0, token=TOKEN)
        srv.server_close()
        srv = make_server(policy, "127.0.0.1", 0)
        srv.server_close()
    assert caplog.text == ""


# ---------------------------------------------------------------------------- the command line
def _start_cli(args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    env.update(env_extra or {})
    proc = subprocess.Popen([sys.executable, "-m", "keras_trpo_serving", "http", "--model", fixture_path("gaussian"),
                             "--port", "0", *args], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    head = ""
    for _ in range(20):  # warnings, then the "serving ... on http://HOST:PORT" line
        line = proc.stderr.readline()
        head += line
        match = re.search(r"on http://[0-9.]+:(\d+)", line)
        if match or not line:
            break
    if not match:
        proc.kill()
        raise AssertionError(f"server did not start: {head}{proc.stderr.read()}")
    return proc, int(match.group(1)), head


def _stop_cli(proc) -> str:
    proc.terminate()
    try:
        _, rest = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, rest = proc.communicate()
    return rest


@pytest.mark.parametrize("how", ["file", "env"])
def test_cli_requires_the_token_and_never_prints_it(tmp_path, how):
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o600)
    args, env = (["--token-file", str(f)], None) if how == "file" else ([], {TOKEN_ENV: TOKEN})
    proc, port, first = _start_cli(args + ["--access-log"], env)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for auth, want in ((None, 401), ("Bearer wrong", 401), (f"Bearer {TOKEN}", 200)):
            conn.request("GET", "/v1/metadata", headers={"Authorization": auth} if auth else {})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == want
        conn.close()
    finally:
        output = first + _stop_cli(proc)
    assert "bearer token from" in first and TOKEN not in output


def test_cli_refuses_an_unreadable_token_file(tmp_path):
    out = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "http", "--model", fixture_path("gaussian"),
                          "--port", "0", "--token-file", str(tmp_path / "missing")],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot read the token file" in out.stderr


def test_cli_on_loopback_without_a_token_does_not_warn():
    proc, port, first = _start_cli([])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v1/metadata")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        output = first + _stop_cli(proc)
    assert "WARNING" not in output and "bearer" not in output


def test_cli_on_all_interfaces_without_a_token_warns_at_start():
    proc, _, head = _start_cli(["--host", "0.0.0.0"])
    _stop_cli(proc)  # stopped as soon as it has started: this test sends it nothing
    assert "WARNING keras_trpo_serving.server: serving on 0.0.0.0 without a token" in head
