#!/usr/bin/env bash
# The documentation site's check: installs docs/requirements.txt into the project venv, builds the site with
# `mkdocs build --strict` (no broken link, missing page, API object or snippet; nothing fetched from the
# network), then runs every Python and shell example of the site and the READMEs that is not marked
# "# Not run by the docs tests: REASON" (pytest-markdown-docs with docs/examples_plugin.py) and prints
# how many ran, passed and failed. ~1-2 min on 2 idle cores.
#
#   bash .ci/docs.sh                       # with .venv/bin/python (as .ci/run makes it)
#   PYTHON=/path/to/venv/bin/python bash .ci/docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || { echo "error: no Python at $PY (run .ci/run first, or set PYTHON)" >&2; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 PIP_DISABLE_PIP_VERSION_CHECK=1 NO_MKDOCS_2_WARNING=1 MPLBACKEND=Agg
start=$SECONDS

"$PY" -m pip install -q -r docs/requirements.txt

echo "== mkdocs build --strict"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
if ! "$PY" -m mkdocs build --strict --site-dir "$site" > "$site.log" 2>&1; then
  cat "$site.log"; rm -f "$site.log"
  echo "error: mkdocs build --strict failed" >&2; exit 1
fi
grep -v "^INFO" "$site.log" || true; rm -f "$site.log"
echo "site built: $(find "$site" -name index.html | wc -l) pages ($((SECONDS - start)) s)"

echo "== examples"
mapfile -t pages < <(find docs -name '*.md' -not -path 'docs/benchmarks/generated/*' | sort)
files=(README.md keras_trpo/export/README.md keras_trpo_serving/README.md benchmarks/README.md "${pages[@]}")
PYTHONPATH="$REPO/docs:$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m pytest --markdown-docs -p examples_plugin \
  -p no:cacheprovider -q --timeout 600 --durations=10 --durations-min=3 -W ignore::DeprecationWarning "${files[@]}" 2>&1 |
  grep --line-buffered -v -E '^[IWE][0-9]{4} |^WARNING: All log messages before absl'  # TensorFlow's start-up lines
echo "docs: built and examples run in $((SECONDS - start)) s"
