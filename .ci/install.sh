# Sourced by .ci/run and .ci/check_wheels.sh: how CI installs packages into a virtual environment.
#
# uv installs them faster than pip: the main venv (TensorFlow, ~3 GB unpacked), bytecode compiled as pip does, took
# 95 s in a clean clone with an empty uv cache (49 s with a warm one) against pip's 179 s, on a 2-core AMD EPYC VM
# (the serving venv installing beside it both times). uv comes from the index itself, with pip, into .venv. It does
# not read pip's configuration, so pip's index, extra indexes, wheel folders and constraints are handed to it;
# anything uv cannot install falls back to pip with a line that says so.
#
#   ci_uv_setup PIP       # PIP: a venv's pip; installs uv beside it, sets CI_UV (empty: pip only)
#   make_venv DIR               # a venv with pip in it (uv venv --seed, or python -m venv); PY: the Python
#   venv_install VENV ARGS...   # pip-style install arguments (-r FILE, names, wheel paths, --dry-run, --no-deps)

CI_UV=${CI_UV:-}

ci_uv_setup() {
  local pip=$1 dir
  [ "${KERAS_TRPO_CI_UV:-1}" = 1 ] || return 0  # KERAS_TRPO_CI_UV=0: pip everywhere
  dir=$(dirname "$pip")
  if ! "$pip" install -q uv >/dev/null 2>&1 || ! "$dir/uv" --version >/dev/null 2>&1; then
    echo "note: uv could not be installed; pip installs everything" >&2
    return 0
  fi
  CI_UV=$(cd "$dir" && pwd)/uv
  # pip's settings as uv's: the values pip would use, environment first (pip's own order).
  local value
  value=${PIP_INDEX_URL:-$("$pip" config get global.index-url 2>/dev/null || true)}
  [ -z "$value" ] || export UV_DEFAULT_INDEX="$value"
  value=${PIP_EXTRA_INDEX_URL:-$("$pip" config get global.extra-index-url 2>/dev/null || true)}
  [ -z "$value" ] || export UV_INDEX="$(echo $value)"  # space-separated, as pip's
  value=${PIP_FIND_LINKS:-$("$pip" config get global.find-links 2>/dev/null || true)}
  [ -z "$value" ] || export UV_FIND_LINKS="$(echo $value | tr ' ' ',')"
  value=${PIP_CONSTRAINT:-$("$pip" config get global.constraint 2>/dev/null || true)}
  [ -z "$value" ] || export UV_CONSTRAINT="$(echo $value)"
  # pip takes the best version from all indexes together; uv by default stops at the first index that has the name.
  export UV_INDEX_STRATEGY=unsafe-best-match
  # pip compiles every module to bytecode as it installs; uv only when asked. Where PYTHONDONTWRITEBYTECODE is
  # set (as on CI's machines) nothing is ever compiled later, and importing TensorFlow and the rest took 22-29 s
  # in each process instead of 11 s.
  export UV_COMPILE_BYTECODE=1
  export CI_UV
}

venv_install() {
  local venv=$1
  shift
  if [ -n "$CI_UV" ]; then
    "$CI_UV" pip install -q --python "$venv/bin/python" "$@" && return 0
    echo "note: uv could not install into $venv ($*); pip instead" >&2
  fi
  "$venv/bin/pip" install -q "$@"
}

make_venv() {
  if [ -n "$CI_UV" ] && "$CI_UV" venv -q --seed --python "${PY:-python3}" "$1"; then return 0; fi
  "${PY:-python3}" -m venv "$1"
}
