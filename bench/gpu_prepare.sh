#!/usr/bin/env bash
# Fills the ignored folders that bench/gpu_check.sh needs on a device machine, which reaches nothing. Run it
# here (where PyPI is reachable), in the checkout that the device tool sends (the session's own checkout):
#   .whl/              wheels of what the machine's image lacks (open_clip_torch, ftfy, wcwidth, lpips; pure Python)
#   .gpucheck/parity/  the parity kit's recipe, manifests and golden arrays (../shared/parity does not travel)
#   official/          the official CLIPInverter's Python files, from its git mirror (the speed anchor)
# Then carry them: run(command="bash bench/gpu_check.sh", carry=[".whl", ".gpucheck", "official"]).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
PARITY="${CLIPINVERTER_PARITY:-$ROOT/../shared/parity}"
MIRROR="${OFFICIAL_MIRROR:-/work/.mirror/johnberg1+CLIPInverter/repo}"
WHEELS="${GPU_WHEELS:-open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 lpips==0.1.4}"
cd "$ROOT"

echo "== wheels for the device's Python 3.12: $WHEELS"
# shellcheck disable=SC2086
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS

echo "== parity kit from $PARITY"
mkdir -p .gpucheck/parity
for f in recipe.py manifest_256.json manifest_1024.json golden_256.npz golden_1024.npz; do
  cp "$PARITY/$f" .gpucheck/parity/
done

if [ -d "$MIRROR" ]; then
  echo "== official code (Python files) from $MIRROR"
  git -C "$MIRROR" ls-tree -r --name-only HEAD | grep '\.py$' | while read -r f; do
    mkdir -p "official/$(dirname "$f")"
    git -C "$MIRROR" show "HEAD:$f" > "official/$f"
  done
else
  echo "== no official mirror at $MIRROR: the check runs without the official anchor"
fi
du -sh .whl .gpucheck official 2>/dev/null || true
