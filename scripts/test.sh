#!/usr/bin/env bash
# Sets up .venv and runs the whole test suite. Parity tests read ../shared/parity (or $CLIPINVERTER_PARITY).
source "$(dirname "$0")/env.sh" -r requirements-dev.txt -r requirements-train.txt
if [ "${CI:-}" = "true" ]; then export CLIPINVERTER_REQUIRE_PARITY=1; fi
python -m pytest -q tests "$@"
