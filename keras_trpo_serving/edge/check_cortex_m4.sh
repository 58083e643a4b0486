#!/usr/bin/env bash
# The C policy (python -m keras_trpo.export AGENT --c DIR) on a Cortex-M4, checked on an x86_64 Linux machine
# under QEMU system emulation of an Arm MPS2 AN386 board (Cortex-M4F, qemu-system-arm -M mps2-an386).
#
# Cross-compiles DIR/policy.c with arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16
# -mfloat-abi=hard into a small semihosting test program (keras_trpo_serving/edge/cortex_m4/), runs it on
# 1,000 observations the agent visited in rollouts, and compares its actions with onnxruntime's
# on this machine for the same policy's .onnx (floats within 1e-5, discrete actions equal; it also
# counts the parameters that are bit-identical, all of them when the host has FMA3). Prints
# the policy's flash and RAM (arm-none-eabi-size of policy.o; the stack high-water mark measured on
# the emulated board) and the instructions executed per act, counted from QEMU's execution log.
# QEMU is not cycle-accurate: instructions, not cycles (keras_trpo_serving/README.md, "On a microcontroller").
#
#   keras_trpo_serving/edge/check_cortex_m4.sh                                  # the CI CartPole policy (.ci/artifacts)
#   keras_trpo_serving/edge/check_cortex_m4.sh --c hopper_c --onnx hopper.onnx --obs hopper_rollouts.npy
#   keras_trpo_serving/edge/check_cortex_m4.sh --c taxi/c --onnx taxi/policy.onnx --obs taxi/rollouts.npz   # masked:
#     obs and action_mask from python -m keras_trpo.export AGENT --all taxi
#
# Options: --artifacts DIR (.ci/artifacts: cartpole_c/, cartpole.onnx, cartpole_rollouts.npy; made
# with tests/make_serving_fixtures.py in .venv when missing), --c DIR, --onnx FILE, --obs FILE.npy (or
# FILE.npz with obs and action_mask, for a masked policy),
# --n N (1000), --count N (acts whose instructions are counted, 20), --keep DIR (keep the build).
#
# Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm (installed with apt-get when
# run as root and missing) and a Python with numpy and onnxruntime ($PYTHON, else .venv-serving or .venv).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
die() { echo "error: $*" >&2; exit 2; }
log() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

ARTIFACTS=$REPO/.ci/artifacts C_DIR="" ONNX="" OBS="" N=1000 COUNT=20 KEEP=""
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --artifacts|--c|--onnx|--obs|--n|--count|--keep)
      [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"
      case $1 in
        --artifacts) ARTIFACTS=$2 ;; --c) C_DIR=$2 ;; --onnx) ONNX=$2 ;; --obs) OBS=$2 ;;
        --n) N=$2 ;; --count) COUNT=$2 ;; --keep) KEEP=$2 ;;
      esac
      shift 2 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ $N =~ ^[1-9][0-9]*$ ]] || die "--n must be a positive integer, not '$N'"
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "--count must be a positive integer, not '$COUNT'"

ensure_tools() {
  local missing=()
  command -v arm-none-eabi-gcc >/dev/null || missing+=(gcc-arm-none-eabi)
  if command -v arm-none-eabi-gcc >/dev/null && [ ! -f "$(arm-none-eabi-gcc -print-file-name=rdimon.specs)" ]; then
    missing+=(libnewlib-arm-none-eabi)
  fi
  command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" libnewlib-arm-none-eabi >/dev/null
  else
    die "missing ${missing[*]}: apt-get install ${missing[*]} (or run this script as root)"
  fi
}

find_python() {
  local py
  for py in "${PYTHON:-}" "$REPO/.venv-serving/bin/python" "$REPO/.venv/bin/python" python3; do
    [ -n "$py" ] && command -v "$py" >/dev/null && "$py" -c "import numpy, onnxruntime" 2>/dev/null && { echo "$py"; return; }
  done
  die "no Python with numpy and onnxruntime: pip install -r keras_trpo_serving/requirements.txt (or set PYTHON)"
}

ensure_artifacts() {
  if [ -n "$C_DIR$ONNX$OBS" ]; then
    [ -n "$C_DIR" ] && [ -n "$ONNX" ] && [ -n "$OBS" ] || die "--c, --onnx and --obs go together"
    return
  fi
  C_DIR=$ARTIFACTS/cartpole_c ONNX=$ARTIFACTS/cartpole.onnx OBS=$ARTIFACTS/cartpole_rollouts.npy
  [ -f "$C_DIR/policy.c" ] && [ -f "$ONNX" ] && [ -f "$OBS" ] && return
  [ "$(realpath -m "$ARTIFACTS")" = "$REPO/.ci/artifacts" ] || die "no cartpole_c/, cartpole.onnx and cartpole_rollouts.npy in $ARTIFACTS"
  [ -x "$REPO/.venv/bin/python" ] || die "no $ARTIFACTS/cartpole_c: run .ci/run (or tests/make_serving_fixtures.py --cartpole .ci/artifacts in .venv) first"
  log "no $ARTIFACTS/cartpole_c: training and exporting CartPole as .ci/run does"
  (cd "$REPO" && TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python tests/make_serving_fixtures.py --cartpole .ci/artifacts) >/dev/null
}

ensure_tools
PY=$(find_python)
ensure_artifacts
log "Cortex-M4 (qemu-system-arm -M mps2-an386): $C_DIR on $N observations from $OBS, against $ONNX"
rc=0
line=$(cd "$REPO" && "$PY" -m keras_trpo_serving.edge.cortex_m4 --c "$C_DIR" --onnx "$ONNX" --obs "$OBS" --n "$N" \
       --count "$COUNT" ${KEEP:+--keep "$KEEP"} | tail -1) || rc=$?
[ -n "$line" ] || die "python -m keras_trpo_serving.edge.cortex_m4 failed (status $rc)"
field() { "$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, d))' "$line" "$1"; }
cat <<SUMMARY

== Cortex-M4 check: summary ==
board:            $(field board)
emulator:         $(field qemu)
compiler:         $(field compiler)
flags:            $(field flags)
policy flash:     $(field policy_flash_bytes) bytes (policy.o: code + const weights), static RAM $(field policy_static_ram_bytes) bytes
stack per call:   act $(field stack_bytes_act) bytes, sample $(field stack_bytes_sample) bytes (high-water mark on the board, libm included)
test program:     text/data/bss $(field "'/'.join(map(str, test_program_text_data_bss))") bytes (newlib printf and the observations included)
instructions/act: median $(field "instructions_per_act['median']"), min $(field "instructions_per_act['min']"), max $(field "instructions_per_act['max']") over $(field "instructions_per_act['counted']") acts (executed instructions from QEMU's exec log; QEMU is not cycle-accurate)
actions:          $(field observations) observations$(field "' under their action masks' if masked else ''"), $(field actions_differing) differ from onnxruntime on $(uname -m); worst |action - x86| = $(field max_abs_action_diff), worst parameter difference $(field max_params_diff) (limit 1e-05); $(field params_bit_identical) of $(field params_total) parameters bit-identical
total time:       ${SECONDS}s
SUMMARY
if [ "$rc" = 0 ]; then echo "PASS"; else echo "FAIL"; fi
exit "$rc"
