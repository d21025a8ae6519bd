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
python -m pytest -q --durations=25 tests "$@"
