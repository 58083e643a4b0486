#!/usr/bin/env bash
# Packaging check (.ci/run calls it last): build both wheels from this checkout, install each into a
# fresh venv outside it, and run the commands and an import from there.
#   keras-trpo          fresh venv; its dependencies are taken from .venv through a .pth file (installing
#                       TensorFlow again would add minutes), after `pip install --dry-run` into the empty venv
#                       has shown that the wheel's declared dependencies resolve on their own.
#   keras-trpo-serving  fresh venv with its real dependencies from the index (numpy, onnxruntime, and the
#                       video extra's gymnasium/imageio/pygame), where TensorFlow must not be importable.
# Installs go through .ci/install.sh (uv when it can, pip otherwise), as in .ci/run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/keras-trpo-wheels.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PY=${PYTHON:-python3}
source "$ROOT/.ci/install.sh"
[ -n "$CI_UV" ] || ci_uv_setup "$ROOT/.venv/bin/pip"  # .ci/run has done it already

"$ROOT/.venv/bin/pip" wheel -q --no-deps -w "$WORK/dist" "$ROOT" "$ROOT/keras_trpo_serving"
WHEEL=$(ls "$WORK"/dist/keras_trpo-*.whl)
SERVING_WHEEL=$(ls "$WORK"/dist/keras_trpo_serving-*.whl)

make_venv "$WORK/venv"
venv_install "$WORK/venv" --dry-run "$WHEEL[video]" >/dev/null
SITE=$("$WORK/venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
"$ROOT/.venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$SITE/_ci_deps_from_dotvenv.pth"
venv_install "$WORK/venv" --no-deps "$WHEEL"
cd "$WORK"  # nothing of the checkout on the path from here on
"$WORK/venv/bin/python" - "$WORK/venv" <<'PY'
import sys, keras_trpo, keras_trpo_serving
assert keras_trpo.__file__.startswith(sys.argv[1]) and keras_trpo_serving.__file__.startswith(sys.argv[1]), keras_trpo.__file__
PY
"$WORK/venv/bin/keras-trpo" --version
"$WORK/venv/bin/keras-trpo" train --env CartPole-v1 --timesteps 2048 --out "$WORK/run" --verbose 0 --eval-episodes 2
"$WORK/venv/bin/keras-trpo" export "$WORK/run/agent.keras" --onnx "$WORK/policy.onnx" >/dev/null
"$WORK/venv/bin/python" -m keras_trpo evaluate "$WORK/run/agent.keras" --episodes 2 >/dev/null

make_venv "$WORK/serving-venv"
venv_install "$WORK/serving-venv" "$SERVING_WHEEL[video]"
if "$WORK/serving-venv/bin/python" -c "import tensorflow" 2>/dev/null; then
  echo "error: keras-trpo-serving pulled in TensorFlow" >&2
  exit 1
fi
"$WORK/serving-venv/bin/keras-trpo-serving" run --model "$WORK/policy.onnx" --episodes 2 --video "$WORK/first.gif"
test -s "$WORK/first.gif"
echo "wheels: $(basename "$WHEEL") and $(basename "$SERVING_WHEEL") install and run outside the checkout"
