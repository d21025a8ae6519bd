#!/usr/bin/env bash
# The prepared GPU check of issue 11: one command, on a machine with PyTorch + CUDA and nothing fetched.
#
#   bash bench/gpu_check.sh [--device cuda] [--size 1024] [--batch 1,8,32] [--precision fp32,bf16,fp16]
#                           [--compile none,reduce-overhead] [--repeats 5] [--warmup 3] [--budget 180]
#                           [--tests "tests/test_parity.py tests/test_fast.py"] [--test-timeout 210]
#                           [--out DIR] [--official DIR] [--work DIR] [--tuning-steps 20] [--tuning-warmup 2]
#                           [--tuning-full 350]
#
# 1. installs the carried wheels (.whl/*.whl: open_clip_torch and what the machine lacks) into a private folder;
#    nothing is fetched;
# 2. builds the stand-in bundle at --size: the parity kit's recipe (CLIPINVERTER_PARITY, else .gpucheck/parity,
#    else ../shared/parity), else clipinverter_core.standin;
# 3. runs the parity and fast-path tests on --device (fp32 against the golden arrays, bf16/fp16 against our fp32);
# 4. times the edit (bench/gpu_check.py bench): every batch x precision x compile mode, our reference path, and
#    the official path when its checkout is carried (--official, default official/);
# 5. times identity tuning at --size (bench/tuning_bench.py): seconds per PTI step, ours against the official
#    decoder in PTI's loop (when carried) and our official form, then one whole tuning of --tuning-full steps
#    (the target on an H100/H200 at 1024: 350 steps in 20 s); --tuning-steps 0 skips it;
# 6. writes gpu_check.json, gpu_check.md, tests.log, bench.log and tuning.log to --out (default $OUT, else
#    out/gpu_check) and prints the tables. Exit status: 0 when the tests passed and every output was finite (a
#    tuning bench that cannot run, e.g. without the lpips package, says so in tuning.log and does not count).
# bench/gpu_prepare.sh (run where PyPI is reachable) fills .whl/, .gpucheck/parity and official/.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Under 8 minutes: the kit (about a minute, estimated), the tests (cut at TEST_TIMEOUT), the bench (rows stop
# starting after BUDGET seconds). Not yet measured on a GPU.
DEVICE=cuda SIZE=1024 BATCH=1,8,32 PRECISION=fp32,bf16,fp16 COMPILE=none,reduce-overhead
REPEATS=5 WARMUP=3 BUDGET=180 TEST_TIMEOUT=210 TUNING_STEPS=20 TUNING_WARMUP=2 TUNING_FULL=350
TESTS="tests/test_parity.py tests/test_fast.py"
OUTDIR="${OUT:-$ROOT/out/gpu_check}" OFFICIAL="$ROOT/official"
WORK="${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/clipinverter-gpu-check}"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2";; --size) SIZE="$2";; --batch) BATCH="$2";; --precision) PRECISION="$2";;
    --compile) COMPILE="$2";; --repeats) REPEATS="$2";; --warmup) WARMUP="$2";; --budget) BUDGET="$2";;
    --tests) TESTS="$2";; --test-timeout) TEST_TIMEOUT="$2";;
    --out) OUTDIR="$2";; --official) OFFICIAL="$2";; --work) WORK="$2";;
    --tuning-steps) TUNING_STEPS="$2";; --tuning-warmup) TUNING_WARMUP="$2";; --tuning-full) TUNING_FULL="$2";;
    *) echo "error: unknown option $1 (see the head of $0)" >&2; exit 2;;
  esac
  shift 2
done
PY="${PYTHON:-python3}"
mkdir -p "$OUTDIR" "$WORK"
cd "$ROOT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start )) s] $*"; }

step "packages (carried wheels only)"
if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    "$ROOT"/.whl/*.whl || exit 2
  export PYTHONPATH="$PYTHONPATH:$WORK/site"   # after the machine's own packages: the wheels add, never replace
fi
"$PY" -c "import torch, numpy, safetensors, open_clip, pytest; print('torch', torch.__version__, '| device', '$DEVICE',
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '(no CUDA)')" || {
  echo "error: a package is missing; run bench/gpu_prepare.sh where PyPI is reachable and carry .whl" >&2; exit 2; }

PARITY="${CLIPINVERTER_PARITY:-}"
for p in "$ROOT/.gpucheck/parity" "$ROOT/../shared/parity"; do
  [ -z "$PARITY" ] && [ -f "$p/recipe.py" ] && PARITY="$p"
done
export CLIPINVERTER_KIT_CACHE="${CLIPINVERTER_KIT_CACHE:-$WORK/kits}" CLIPINVERTER_PARITY="${PARITY:-$ROOT/.gpucheck/parity}"
step "stand-in bundle at $SIZE (${PARITY:+parity kit recipe}${PARITY:-clipinverter_core.standin})"
BUNDLE=$("$PY" bench/gpu_check.py kit --size "$SIZE" --cache "$CLIPINVERTER_KIT_CACHE" ${PARITY:+--parity "$PARITY"} | tail -1) || exit 2

step "tests on $DEVICE: $TESTS"
rm -f "$WORK/junit.xml"
set -f  # test ids such as test_x[256] are words, not file patterns
# shellcheck disable=SC2086
CLIPINVERTER_TEST_DEVICE="$DEVICE" timeout "$TEST_TIMEOUT" "$PY" -m pytest -q -p no:cacheprovider $TESTS --junitxml "$WORK/junit.xml" \
  2>&1 | tee "$OUTDIR/tests.log"
set +f

step "bench on $DEVICE (budget $BUDGET s)"
"$PY" bench/gpu_check.py bench --model "$BUNDLE" --device "$DEVICE" --batch "$BATCH" --precision "$PRECISION" \
  --compile "$COMPILE" --repeats "$REPEATS" --warmup "$WARMUP" --budget "$BUDGET" --official "$OFFICIAL" --kit "$(dirname "$BUNDLE")" \
  --junit "$WORK/junit.xml" --out "$OUTDIR" 2>&1 | tee "$OUTDIR/bench.log"
status=${PIPESTATUS[0]}

if [ "$TUNING_STEPS" -gt 0 ]; then
  step "identity tuning on $DEVICE at $SIZE ($TUNING_STEPS steps a path, then one of $TUNING_FULL)"
  "$PY" bench/tuning_bench.py --kit "$(dirname "$BUNDLE")" --device "$DEVICE" --steps "$TUNING_STEPS" --warmup "$TUNING_WARMUP" \
    --rounds 1 --official "$OFFICIAL" --work "$WORK/tuning" --full "$TUNING_FULL" 2>&1 | tee "$OUTDIR/tuning.log"
  "$PY" bench/tuning_bench.py --kit "$(dirname "$BUNDLE")" --device "$DEVICE" --work "$WORK/tuning" \
    --measure memory 2>&1 | tee -a "$OUTDIR/tuning.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || echo "tuning bench: did not run (see above); not counted in the exit status" \
    | tee -a "$OUTDIR/tuning.log"
fi
step "done: $OUTDIR/gpu_check.json, gpu_check.md (exit $status)"
exit "$status"
