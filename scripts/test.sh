#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite. Parity tests read ../shared/parity (or $CLIPINVERTER_PARITY).
source "$(dirname "$0")/env.sh" -r requirements-dev.txt -r requirements-train.txt
# In CI a missing parity kit or C++ compiler (torch.compile's CPU kernels) is a broken setup: fail, not skip.
if [ "${CI:-}" = "true" ]; then export CLIPINVERTER_REQUIRE_PARITY=1 CLIPINVERTER_REQUIRE_COMPILER=1; fi
# tcmalloc, where installed (Debian: libtcmalloc-minimal4; .ci/run installs it): the training tests allocate and
# free activations of hundreds of MB; glibc returns each to the kernel and faults it back in zeroed, which was half
# of the float64 golden tests' time (system time). tcmalloc reuses them: those tests take half as long.
for lib in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4; do
  if [ -z "${CLIPINVERTER_NO_TCMALLOC:-}" ] && [ -f "$lib" ]; then
    export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}"
    echo "== tcmalloc: $lib"
    break
  fi
done
# --durations: the slowest 25 steps of every run in the log, so that drift in CI time is seen
PYTEST=(python -m pytest -q --durations=25)
if [ $# -gt 0 ]; then exec "${PYTEST[@]}" tests "$@"; fi  # a chosen part of the suite: one process

# The whole suite, in three pytest processes (docs/tests.md, "What CI costs"):
# - SIDE, beside MAIN at the lowest CPU priority (nice 19): tests that mostly wait on the CLI processes they start,
#   or on disk. They take the cores MAIN leaves idle and yield them when MAIN computes (at equal priority the two
#   slowed each other's convolutions down by as much as they gained).
# - HEAVY, after both: the training and tuning goldens, alone, in a fresh process. They keep both cores busy, and
#   their float64 graphs (9 GB live) peak lowest where no other test's fixtures or allocator history sit under them.
SIDE=(tests/test_cli.py tests/test_align.py tests/test_download.py tests/test_heap.py tests/test_convert.py
      tests/test_images.py)
HEAVY=(tests/test_training_golden.py tests/test_tuning_golden.py)
RUN_DIR=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$RUN_DIR"' EXIT  # an interrupted run leaves no lane behind
# The three processes share the kits (conftest.py's kit_factory locks each while it is written): built once a run.
export CLIPINVERTER_KIT_CACHE="${CLIPINVERTER_KIT_CACHE:-$RUN_DIR/kits}"
python scripts/peak_rss.py $$ &
SAMPLER=$!
nice -n 19 "${PYTEST[@]}" "${SIDE[@]}" > "$RUN_DIR/side.log" 2>&1 &
SIDE_PID=$!
failed=()
"${PYTEST[@]}" tests $(printf -- '--ignore=%s ' "${SIDE[@]}" "${HEAVY[@]}") || failed+=(main)
wait "$SIDE_PID" || failed+=(side)
echo "== the side lane, run beside the one above: ${SIDE[*]}"
cat "$RUN_DIR/side.log"
echo "== the heavy lane, alone: ${HEAVY[*]}"
"${PYTEST[@]}" "${HEAVY[@]}" || failed+=(heavy)
kill "$SAMPLER" && wait "$SAMPLER" || true
if [ ${#failed[@]} -gt 0 ]; then echo "== failed: ${failed[*]}"; exit 1; fi
