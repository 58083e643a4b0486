"""GET /openapi.json describes the loaded policy, and the live server keeps to it: schemathesis
generates requests from the document (valid and invalid ones) and checks every answer: no 5xx,
status codes and bodies as documented, invalid input refused, valid input accepted."""
import os
import shutil
import subprocess
import sys

import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.tests.conftest import fixture_path
from keras_trpo_serving.tests.test_server import request, running
from keras_trpo_serving.server import make_server

SCHEMATHESIS = shutil.which("schemathesis", path=os.path.dirname(sys.executable)) or shutil.which("schemathesis")
MAX_EXAMPLES = int(os.environ.get("KERAS_TRPO_SCHEMATHESIS_EXAMPLES", "40"))  # per operation and phase
if os.environ.get("CI") and not SCHEMATHESIS:
    raise RuntimeError("CI must install schemathesis in the serving venv (see .ci/run)")  # never skip silently


@pytest.mark.parametrize("name, obs_schema, action_schema", [
    ("gaussian", {"type": "array", "minItems": 3, "maxItems": 3}, {"type": "array", "minItems": 2, "maxItems": 2}),
    ("discrete", {"type": "array", "minItems": 4, "maxItems": 4}, {"type": "integer", "minimum": 1, "maximum": 3}),
    ("discrete_obs", {"type": "integer", "minimum": 0, "maximum": 5}, {"type": "integer", "minimum": 0, "maximum": 1}),
])
def test_openapi_document_has_the_policys_shapes(name, obs_schema, action_schema):
    policy = OnnxPolicy(fixture_path(name))
    with running(make_server(policy, "127.0.0.1", 0)) as srv:
        status, doc = request(srv, "GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    assert obs_schema.items() <= schemas["Observation"].items()
    assert action_schema.items() <= schemas["Action"].items()
    assert doc["info"]["x-keras-trpo-metadata"] == policy.metadata
    assert set(doc["paths"]) == {"/v1/act", "/v1/metadata", "/healthz", "/metrics", "/openapi.json"}
    assert "securitySchemes" not in doc["components"]


@pytest.mark.skipif(not SCHEMATHESIS, reason="schemathesis is not installed (pip install schemathesis)")
@pytest.mark.parametrize("name, token", [("gaussian", None), ("multidiscrete", "s3cret"), ("discrete_obs", None),
                                         ("stochastic_discrete", None), ("stateful_recurrent_dict", None),
                                         ("stateful_recurrent", "s3cret"), ("recurrent_pointgoal", None),
                                         # action masks (issue 29): per sub-space / per bit "something valid" in the schema
                                         ("masked_taxi", None), ("masked_multidiscrete", None),
                                         ("masked_multibinary", "s3cret"), ("masked_recurrent", None),
                                         ("export_masked_joints_gru", None)])
def test_schemathesis_finds_no_5xx_and_no_schema_violation(name, token, tmp_path):
    with running(make_server(OnnxPolicy(fixture_path(name)), "127.0.0.1", 0, token=token,
                             max_body_bytes=1 << 16)) as srv:
        host, port = srv.server_address[:2]
        auth = ["--header", f"Authorization: Bearer {token}"] if token else []
        out = subprocess.run([SCHEMATHESIS, "run", f"http://{host}:{port}/openapi.json", "--checks", "all",
                              "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--no-color", *auth],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)  # its cache dir goes there
    summary = out.stdout[out.stdout.rfind("SUMMARY"):]
    print(summary)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "generated" in summary
