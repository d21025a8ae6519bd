#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite. Parity tests read ../shared/parity (or $CLIPINVERTER_PARITY).
source "$(dirname "$0")/env.sh" -r requirements-dev.txt -r requirements-train.txt
# In CI a missing parity kit or C++ compiler (torch.compile's CPU kernels) is a broken setup: fail, not skip.
if [ "${CI:-}" = "true" ]; then export CLIPINVERTER_REQUIRE_PARITY=1 CLIPINVERTER_REQUIRE_COMPILER=1; fi
python -m pytest -q tests "$@"
