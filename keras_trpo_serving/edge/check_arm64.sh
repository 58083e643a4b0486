#!/usr/bin/env bash
# keras_trpo_serving/ on 64-bit ARM, checked on an x86_64 Linux machine under qemu user-mode emulation.
#
# Builds (once, cached in .cache/arm64/) a Debian arm64 root with its own Python, and a
# site-packages of aarch64 wheels for keras_trpo_serving/requirements.txt + pytest + gymnasium. Then, chrooted
# into that root with a Raspberry Pi's CPU emulated (qemu -cpu) and the Pi's /proc/cpuinfo
# bind-mounted over the host's in a private mount namespace, it runs:
#   1. what the emulated Python sees: uname -m, platform.machine(), onnxruntime and numpy versions;
#   2. serving's test suite (sockets work under qemu-user, so all of it, HTTP server included);
#   3. python -m keras_trpo_serving run on the CI CartPole policy (.ci/artifacts/cartpole.onnx), whose
#      returns must reach 475 and equal those of the same command on x86 when an x86 venv exists;
#   4. python -m keras_trpo_serving.edge.compare_actions: actions for the 10,000 observations in
#      .ci/artifacts/cartpole.npz against the x86 TF agent's, failing if any differs by > 1e-5.
# It prints a summary and exits non-zero if any step fails.
#
#   keras_trpo_serving/edge/check_arm64.sh                    # newest onnxruntime keras_trpo_serving/requirements.txt allows
#   keras_trpo_serving/edge/check_arm64.sh --ort 1.22.1       # a given onnxruntime, even one the bounds exclude
#   keras_trpo_serving/edge/check_arm64.sh --board pi5        # Cortex-A76 (Raspberry Pi 5) instead of the Pi 4's A72
#
# Options: --ort VERSION, --board pi3|pi4|pi5 (Cortex-A53|A72|A76), --cpuinfo FILE|host (host: no bind mount, the host's
# x86 /proc/cpuinfo shows through, as in plain qemu-user), --suite bookworm|trixie (Debian release
# of the root; bookworm = Raspberry Pi OS 12), --episodes N (10), --artifacts DIR (.ci/artifacts;
# made with tests/make_serving_fixtures.py in .venv when missing), --cache DIR (.cache/arm64),
# --mirror URL.
#
# Needs root on an x86_64 Debian or Ubuntu host (apt-get, debootstrap, chroot, unshare) and access
# to a Debian mirror and PyPI. Installs qemu-user-static, debootstrap and python3-pip if missing,
# and registers qemu's aarch64 binfmt handler if it is not (the package does that on hosts that
# run systemd), so that programs in the root, the CLI test's subprocess included, run emulated.
#
# Why a Pi's /proc/cpuinfo: qemu-user 7.2 (Debian 12) shows emulated programs the host's x86
# /proc/cpuinfo. onnxruntime >= 1.28 bundles a cpuinfo library that then finds processors without
# an ARM CPU id, decodes no L2 cache for them, yet reads an L2 size from the host's sysfs and
# stores it through a NULL pointer: SIGSEGV when onnxruntime is imported. A real arm64 kernel
# always prints the CPU id fields, so this is an emulation artefact (keras_trpo_serving/README.md, "ARM64").
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
MIN_RETURN=475  # CartPole-v1 counts as solved at 475; serving's own CLI test uses the same bar

die() { echo "error: $*" >&2; exit 2; }
log() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$SELF"; }

# ---------------------------------------------------------------- inside the mount namespace
# Re-entered through `unshare --mount` by main(): every mount below vanishes with the namespace,
# so nothing is left mounted on the host, whatever happens.
inside() {
  local root=$EDGE_ROOT
  SECONDS=$EDGE_SECONDS  # one clock for the whole run
  mount --rbind /proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --rbind /dev "$root/dev"
  if [ "$EDGE_CPUINFO" != host ]; then mount --bind "$EDGE_CPUINFO" "$root/proc/cpuinfo"; fi
  local src dst
  for pair in "$REPO:repo" "$EDGE_ARTIFACTS:artifacts" "$EDGE_SITE:site"; do
    src=${pair%:*} dst=$root/${pair##*:}
    mount --bind "$src" "$dst"
    mount -o remount,bind,ro "$dst"  # the emulated side reads the clone, it never writes to it
  done

  local fixtures=(KERAS_TRPO_CARTPOLE_ONNX=/artifacts/cartpole.onnx KERAS_TRPO_CARTPOLE_REFERENCE=/artifacts/cartpole.npz)
  if [ -f "$EDGE_ARTIFACTS/cartpole.tflite" ]; then fixtures+=(KERAS_TRPO_CARTPOLE_TFLITE=/artifacts/cartpole.tflite); fi
  arm() {  # run a command in the arm64 root, from the repository, with a clean environment (as .ci/run's)
    chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 \
      QEMU_CPU="$EDGE_QEMU_CPU" PYTHONPATH=/site PYTHONDONTWRITEBYTECODE=1 PYTHONNOUSERSITE=1 "${fixtures[@]}" \
      /bin/sh -c 'cd /repo && exec "$@"' sh "$@"
  }
  died() {  # "exit status N" or the signal's name for a status above 128
    if [ "$1" -gt 128 ]; then echo "killed by SIG$(kill -l $(($1 - 128))) (status $1)"; else echo "exit status $1"; fi
  }
  field() { python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, d))' "$1" "$2"; }

  local failed=0 rc info line
  log "1/4 what the emulated Python sees"
  echo "    uname -m (emulated coreutils): $(arm uname -m)"
  echo "    CPU in /proc/cpuinfo: $(arm sh -c "grep -m1 -E '^CPU part' /proc/cpuinfo || echo 'no ARM CPU part line (host x86 cpuinfo)'")"
  rc=0
  info=$(arm python3 -c 'import json, platform, sys, numpy, onnxruntime as ort
print(json.dumps({"machine": platform.machine(), "python": platform.python_version(), "numpy": numpy.__version__,
                  "onnxruntime": ort.__version__, "providers": ort.get_available_providers()}))' 2>"$EDGE_LOGS/import.err") || rc=$?
  if [ "$rc" != 0 ]; then
    echo "    importing onnxruntime failed: $(died "$rc")"; sed 's/^/    | /' "$EDGE_LOGS/import.err" | tail -5
    echo "onnxruntime ${EDGE_ORT:-(newest allowed)} does not import on emulated $EDGE_BOARD_NAME with /proc/cpuinfo: $EDGE_CPUINFO_LABEL"
    return 1
  fi
  info=$(tail -1 <<<"$info")
  echo "    platform.machine(): $(field "$info" machine), Python $(field "$info" python)," \
       "numpy $(field "$info" numpy), onnxruntime $(field "$info" onnxruntime) $(field "$info" providers)"

  log "2/4 serving's test suite (python -m pytest keras_trpo_serving/tests)"
  rc=0
  arm python3 -m pytest keras_trpo_serving/tests -q -p no:cacheprovider -rfEs >"$EDGE_LOGS/pytest.log" 2>&1 || rc=$?
  local tests_line
  tests_line=$(grep -E '^[=]* ?[0-9]+ (passed|failed)|(passed|failed|error).* in [0-9.]+s' "$EDGE_LOGS/pytest.log" | tail -1 | tr -d '=' | sed 's/^ *//;s/ *$//' || true)
  grep -E '^(FAILED|ERROR)' "$EDGE_LOGS/pytest.log" | sed 's/^/    /' || true
  { grep -E '^SKIPPED' "$EDGE_LOGS/pytest.log" || true; } | sed 's/^/    /' | awk 'NR <= 5; END {if (NR > 5) print "    ... " NR - 5 " more SKIPPED lines"}'
  echo "    ${tests_line:-no summary line}; skip reasons and tracebacks: $EDGE_LOGS/pytest.log"
  if [ "$rc" != 0 ]; then echo "    pytest: $(died "$rc")"; failed=1; fi

  log "3/4 python -m keras_trpo_serving run --model cartpole.onnx --env CartPole-v1 --episodes $EDGE_EPISODES"
  rc=0
  line=$(arm python3 -m keras_trpo_serving run --model /artifacts/cartpole.onnx --env CartPole-v1 \
         --episodes "$EDGE_EPISODES" 2>"$EDGE_LOGS/run.err" | tail -1) || rc=$?
  local run_summary="failed"
  if [ "$rc" != 0 ] || [ -z "$line" ]; then
    echo "    serving run: $(died "$rc")"; tail -5 "$EDGE_LOGS/run.err" | sed 's/^/    | /'; failed=1
  else
    local mean returns
    mean=$(field "$line" mean_return) returns=$(field "$line" returns)
    echo "    arm64: mean_return $mean over $(field "$line" episodes) episodes, returns $returns"
    run_summary="mean_return $mean over $EDGE_EPISODES episodes"
    if ! python3 -c 'import sys; sys.exit(float(sys.argv[1]) < float(sys.argv[2]))' "$mean" "$MIN_RETURN"; then
      echo "    mean return below $MIN_RETURN"; failed=1
    fi
    if [ -s "$EDGE_LOGS/x86_run.json" ]; then
      local x86
      x86=$(tail -1 "$EDGE_LOGS/x86_run.json")
      echo "    x86:   mean_return $(field "$x86" mean_return), returns $(field "$x86" returns) ($EDGE_X86_LABEL)"
      if [ "$(field "$x86" returns)" = "$returns" ]; then
        run_summary+=", every episode's return equal to x86's"
      else
        echo "    per-episode returns differ from x86's"; run_summary+=", returns DIFFER from x86's"; failed=1
      fi
    else
      run_summary+=" (no x86 venv with onnxruntime + gymnasium to compare returns with)"
    fi
  fi

  log "4/4 actions on the reference observations against the x86 TF agent's (cartpole.npz)"
  rc=0
  line=$(arm python3 -m keras_trpo_serving.edge.compare_actions --model /artifacts/cartpole.onnx \
         --reference /artifacts/cartpole.npz 2>"$EDGE_LOGS/compare.err" | tail -1) || rc=$?
  local cmp_summary="failed"
  if [ -z "$line" ] || [ "$rc" = 2 ] || [ "$rc" -gt 128 ]; then
    echo "    compare_actions: $(died "$rc")"; tail -5 "$EDGE_LOGS/compare.err" | sed 's/^/    | /'; failed=1
  else
    echo "    $line"
    cmp_summary="$(field "$line" observations) observations, max |action - x86| = $(field "$line" max_abs_action_diff)"
    cmp_summary+=" (limit $(field "$line" atol)), $(field "$line" actions_differing) differ;"
    cmp_summary+=" $(field "$line" '", ".join("max |%s - x86| = %.3g" % (k, v["max_abs_diff"]) for k, v in params.items())')"
    [ "$rc" = 0 ] || failed=1
  fi

  cat <<EOF

== arm64 check: summary ==
emulated:         qemu-aarch64 $EDGE_QEMU_VERSION, -cpu $EDGE_QEMU_CPU ($EDGE_BOARD_NAME), /proc/cpuinfo: $EDGE_CPUINFO_LABEL
root:             Debian $EDGE_SUITE arm64, Python $(field "$info" python)
uname -m:         $(arm uname -m)
platform.machine: $(field "$info" machine)
onnxruntime:      $(field "$info" onnxruntime) ($EDGE_ORT_LABEL), numpy $(field "$info" numpy)
serving tests:    ${tests_line:-see $EDGE_LOGS/pytest.log}
serving run:      $run_summary
actions:          $cmp_summary
EOF
  return "$failed"
}

# ---------------------------------------------------------------- on the host
quiet_pip() {  # PIP ARGS...: pip install, quietly; drops pip's notes about configured local index folders that do not exist
  "$@" -q --disable-pip-version-check --root-user-action=ignore \
    2> >(grep -v -e 'is ignored: it is neither a file nor a directory' >&2)
}

ensure_host_tools() {
  [ "$(id -u)" = 0 ] || die "run as root: debootstrap, chroot and mount namespaces need it"
  [ "$(uname -m)" != aarch64 ] || die "this machine is arm64 already: install keras_trpo_serving/requirements.txt and run the tests directly"
  command -v apt-get >/dev/null || die "needs a Debian or Ubuntu host (apt-get)"
  local missing=()
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

ensure_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir" || die "cannot mount $dir"
  if [ ! -e "$dir/qemu-aarch64" ]; then
    [ -f "$conf" ] || die "$conf missing: is qemu-user-static installed?"
    log "registering qemu's aarch64 binfmt handler from $conf"
    cat "$conf" >"$dir/register"
  fi
  grep -qx enabled "$dir/qemu-aarch64" || die "the qemu-aarch64 binfmt handler is disabled ($dir/qemu-aarch64)"
  # F: the kernel opens qemu when the handler is registered, so it also works inside the chroot.
  grep -q '^flags:.*F' "$dir/qemu-aarch64" || die "the qemu-aarch64 binfmt handler lacks the F flag; re-register it from $conf"
}

build_root() {  # -> $ROOT, a Debian arm64 root with python3 (cached)
  ROOT=$CACHE/root-$SUITE
  if [ -f "$ROOT/.complete" ]; then log "arm64 root: $ROOT (cached)"; return; fi
  local tmp=$ROOT.partial
  rm -rf "$tmp"
  log "debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 $SUITE"
  debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 "$SUITE" "$tmp" "$MIRROR" \
    >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; die "debootstrap failed ($CACHE/debootstrap.log)"; }
  # debootstrap's second stage would configure every package under emulation (slow) and nothing
  # here needs a configured package: unpack them all instead, keeping the merged /usr symlinks.
  if [ -L "$tmp/proc" ]; then rm "$tmp/proc" && mkdir "$tmp/proc"; fi  # never extract through a link to the host's /proc
  local deb
  for deb in "$tmp"/var/cache/apt/archives/*.deb; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$tmp"
  done
  mkdir -p "$tmp/repo" "$tmp/artifacts" "$tmp/site"
  touch "$tmp/.complete"
  mv "$tmp" "$ROOT"
  log "arm64 root ready: $ROOT ($(du -sh "$ROOT" | cut -f1))"
}

build_site() {  # -> $SITE, aarch64 wheels for the root's Python; $ORT_LABEL
  local pyver glibc
  pyver=$(readlink "$ROOT/usr/bin/python3"); pyver=${pyver#python}
  glibc=$(chroot "$ROOT" /usr/bin/getconf GNU_LIBC_VERSION)  # emulated already: proves binfmt works
  glibc=${glibc##* }
  local reqs=$CACHE/requirements-arm64.txt
  if [ -n "$ORT" ]; then
    local spec
    spec=$(grep -i -E '^[[:space:]]*onnxruntime([^-_a-z0-9]|$)' "$REPO/serving/requirements.txt" | sed 's/#.*//;s/[[:space:]]//g') \
      || die "keras_trpo_serving/requirements.txt has no onnxruntime line for --ort to replace"
    { grep -v -i -E '^[[:space:]]*onnxruntime([^-_a-z0-9]|$)' "$REPO/serving/requirements.txt" || true; } >"$reqs"
    echo "onnxruntime==$ORT" >>"$reqs"
    local inside=0
    python3 -c 'import sys
from pip._vendor.packaging.requirements import Requirement
sys.exit(sys.argv[2] not in Requirement(sys.argv[1]).specifier)' "$spec" "$ORT" 2>/dev/null || inside=$?
    case $inside in
      0) ORT_LABEL="pinned with --ort; within keras_trpo_serving/requirements.txt's $spec" ;;
      1) ORT_LABEL="pinned with --ort; OUTSIDE keras_trpo_serving/requirements.txt's $spec" ;;
      *) ORT_LABEL="pinned with --ort; keras_trpo_serving/requirements.txt says $spec" ;;
    esac
    SITE=$CACHE/site-$SUITE-onnxruntime-$ORT
  else
    cp "$REPO/serving/requirements.txt" "$reqs"
    ORT_LABEL="newest keras_trpo_serving/requirements.txt allows"
    SITE=$CACHE/site-$SUITE-newest  # re-resolved on every run: "newest" moves
    rm -rf "$SITE"
  fi
  if [ -f "$SITE/.complete" ]; then log "aarch64 site-packages: $SITE (cached)"; return; fi
  # What .ci/run puts in its serving venv: keras_trpo_serving/requirements.txt, the optional parts'
  # keras_trpo_serving/requirements-*.txt (their tests run when they are installed), pytest and gymnasium.
  local extra=() names="keras_trpo_serving/requirements.txt" f
  for f in "$REPO"/serving/requirements-*.txt; do
    [ -f "$f" ] && extra+=(-r "$f") && names+=" + ${f##*/}"
  done
  # pip picks wheels for the root, not for this host: CPython $pyver, aarch64, any manylinux tag
  # the root's glibc satisfies (onnxruntime's are manylinux_2_27/2_28, numpy's 2_17 or newer).
  local platforms=(--platform manylinux2014_aarch64) m
  for ((m = 17; m <= ${glibc#*.}; m++)); do platforms+=(--platform "manylinux_2_${m}_aarch64"); done
  log "pip: aarch64 wheels for Python $pyver, glibc $glibc: $names${ORT:+ with onnxruntime==$ORT} + pytest + gymnasium"
  rm -rf "$SITE.partial"
  quiet_pip python3 -m pip install --no-warn-script-location --only-binary=:all: --implementation cp \
    --python-version "$pyver" "${platforms[@]}" --target "$SITE.partial" -r "$reqs" "${extra[@]}" pytest gymnasium \
    || die "pip could not install aarch64 wheels for $reqs ${extra[*]}"
  touch "$SITE.partial/.complete"
  mv "$SITE.partial" "$SITE"
}

ensure_artifacts() {
  if [ -f "$ARTIFACTS/cartpole.onnx" ] && [ -f "$ARTIFACTS/cartpole.npz" ]; then
    log "CartPole policy: $ARTIFACTS/cartpole.onnx"; return
  fi
  [ "$ARTIFACTS" = "$REPO/.ci/artifacts" ] || die "no cartpole.onnx and cartpole.npz in $ARTIFACTS"
  log "no .ci/artifacts/cartpole.*: training and exporting it as .ci/run does (x86, TensorFlow venv .venv)"
  if [ ! -x "$REPO/.venv/bin/python" ]; then
    python3 -m venv "$REPO/.venv" 2>/dev/null || {
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null && python3 -m venv "$REPO/.venv"; }
  fi
  quiet_pip "$REPO/.venv/bin/python" -m pip install -r "$REPO/requirements.txt"
  local rc=0
  (cd "$REPO" && TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python tests/make_serving_fixtures.py --cartpole .ci/artifacts) \
    >"$LOGS/make_fixtures.log" 2>&1 || rc=$?
  grep -v -E '^(WARNING: All log|I0000|E0000)' "$LOGS/make_fixtures.log" | tail -5 || true
  [ "$rc" = 0 ] || die "tests/make_serving_fixtures.py failed (status $rc): $LOGS/make_fixtures.log"
}

x86_reference_run() {  # the same `serving run` on x86, if a venv here has onnxruntime and gymnasium
  local py
  : >"$LOGS/x86_run.json"
  X86_LABEL=""
  for py in "$REPO/.venv-serving/bin/python" "$REPO/.venv/bin/python"; do
    [ -x "$py" ] && "$py" -c "import onnxruntime, gymnasium" 2>/dev/null || continue
    (cd "$REPO" && "$py" -m keras_trpo_serving run --model "$ARTIFACTS/cartpole.onnx" --env CartPole-v1 \
      --episodes "$EPISODES" >"$LOGS/x86_run.json" 2>"$LOGS/x86_run.err") || { : >"$LOGS/x86_run.json"; continue; }
    X86_LABEL="$(uname -m), onnxruntime $("$py" -c 'import onnxruntime; print(onnxruntime.__version__)'), ${py#"$REPO"/}"
    log "x86 reference run: $X86_LABEL"
    return
  done
  log "no x86 venv with onnxruntime + gymnasium (.venv-serving, .venv): arm64 returns will not be compared"
}

main() {
  ORT="" BOARD=pi4 CPUINFO="" SUITE=bookworm EPISODES=10 MIRROR=http://deb.debian.org/debian
  CACHE=$REPO/.cache/arm64 ARTIFACTS=$REPO/.ci/artifacts
  while [ $# -gt 0 ]; do
    case $1 in
      -h|--help) usage; exit 0 ;;
      --ort|--board|--cpuinfo|--suite|--episodes|--mirror|--cache|--artifacts)
        [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"
        case $1 in
          --ort) ORT=$2 ;; --board) BOARD=$2 ;; --cpuinfo) CPUINFO=$2 ;; --suite) SUITE=$2 ;;
          --episodes) EPISODES=$2 ;; --mirror) MIRROR=$2 ;; --cache) CACHE=$2 ;; --artifacts) ARTIFACTS=$2 ;;
        esac
        shift 2 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
  done
  case $BOARD in
    pi3) QEMU_CPU=cortex-a53 BOARD_NAME="Raspberry Pi 3, Cortex-A53" ;;
    pi4) QEMU_CPU=cortex-a72 BOARD_NAME="Raspberry Pi 4, Cortex-A72" ;;
    pi5) QEMU_CPU=cortex-a76 BOARD_NAME="Raspberry Pi 5, Cortex-A76" ;;
    *) die "--board must be pi3, pi4 or pi5, not '$BOARD'" ;;
  esac
  [[ $EPISODES =~ ^[1-9][0-9]*$ ]] || die "--episodes must be a positive integer, not '$EPISODES'"
  [[ -z $ORT || $ORT =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "--ort takes a version like 1.22.1, not '$ORT'"
  case $SUITE in bookworm|trixie) ;; *) die "--suite must be bookworm or trixie, not '$SUITE'" ;; esac
  if [ -z "$CPUINFO" ]; then
    CPUINFO=$HERE/cpuinfo/raspberry-pi-${BOARD#pi}.txt CPUINFO_LABEL="${CPUINFO#"$REPO"/} (bind-mounted)"
  elif [ "$CPUINFO" = host ]; then
    CPUINFO_LABEL="the host's ($( (grep -m1 'model name' /proc/cpuinfo || echo "$(uname -m)") | sed 's/.*: //')), not replaced"
  else
    [ -f "$CPUINFO" ] || die "--cpuinfo: no file $CPUINFO"
    CPUINFO=$(realpath "$CPUINFO") CPUINFO_LABEL="$CPUINFO (bind-mounted)"
  fi
  ARTIFACTS=$(realpath -m "$ARTIFACTS")
  mkdir -p "$CACHE"; CACHE=$(realpath "$CACHE")
  LOGS=$CACHE/logs-$SUITE-${ORT:-newest}-$BOARD
  mkdir -p "$LOGS"

  log "keras_trpo_serving/ on arm64 under qemu user-mode emulation ($BOARD_NAME)"
  ensure_host_tools
  ensure_binfmt
  build_root
  build_site
  ensure_artifacts
  x86_reference_run

  local qemu_version rc=0
  qemu_version=$(qemu-aarch64-static --version | head -1 | awk '{print $3}')
  log "running in the arm64 root (private mount namespace)"
  EDGE_ROOT=$ROOT EDGE_SITE=$SITE EDGE_ARTIFACTS=$ARTIFACTS EDGE_LOGS=$LOGS EDGE_CPUINFO=$CPUINFO \
  EDGE_CPUINFO_LABEL=$CPUINFO_LABEL EDGE_QEMU_CPU=$QEMU_CPU EDGE_QEMU_VERSION=$qemu_version \
  EDGE_BOARD_NAME=$BOARD_NAME EDGE_ORT_LABEL=$ORT_LABEL EDGE_SUITE=$SUITE EDGE_EPISODES=$EPISODES \
  EDGE_X86_LABEL=$X86_LABEL EDGE_SECONDS=$SECONDS EDGE_ORT=$ORT \
    unshare --mount --propagation private "$BASH" "$SELF" --inside || rc=$?
  echo "total time:       $((SECONDS / 60))m$((SECONDS % 60))s"
  if [ "$rc" = 0 ]; then echo "PASS"; else echo "FAIL (logs: $LOGS)"; fi
  return "$rc"
}

if [ "${1:-}" = --inside ]; then
  [ -n "${EDGE_ROOT:-}" ] || die "--inside is internal: run the script without it"
  inside
else
  main "$@"
fi
