# Sourced by demo.sh and test.sh: makes .venv (once) with PyTorch and the requirements, and activates it.
# TORCH_SPEC overrides the PyTorch pins (e.g. a CUDA build of your choice); an existing torch is kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CLIPINVERTER_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# CLIPINVERTER_LAZY_BYTECODE=1 (.ci/run): pip skips compiling every file it installs (26 s of a fresh CI install);
# Python compiles what is imported, once, unless PYTHONDONTWRITEBYTECODE is set (then every process would).
PIP=(python -m pip install -q)
if [ -n "${CLIPINVERTER_LAZY_BYTECODE:-}" ]; then PIP+=(--no-compile); fi
if ! python -c "import torch, torchvision" 2>/dev/null; then
  echo "== installing PyTorch (${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1})"
  # shellcheck disable=SC2086
  "${PIP[@]}" ${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
fi
"${PIP[@]}" -r "$ROOT/requirements.txt" "$@"
cd "$ROOT"
