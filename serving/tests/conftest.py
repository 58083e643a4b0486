import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
NAMES = ("discrete", "gaussian", "multidiscrete", "discrete_obs")


def fixture_path(name: str) -> str:
    return os.path.join(FIXTURES, f"{name}.onnx")


def reference(name: str) -> dict:
    with np.load(os.path.join(FIXTURES, f"{name}.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(params=NAMES)
def named_policy(request):
    from serving import OnnxPolicy

    return request.param, OnnxPolicy(fixture_path(request.param), seed=0), reference(request.param)
