"""Atomic output: write to a temporary name beside the target, rename when complete.

A crash, a cancel or a full disk never leaves a half-written file under the target's name, and two
processes writing the same path each leave a whole file (the last rename wins).

And the project's own safetensors files (training checkpoints, tuned weights): tensors with a `format` and a
`format_version` in their metadata, written atomically (`write_tagged`) and read back with one-line errors for a
missing, unreadable, foreign or newer file (`read_tagged`).
"""
from __future__ import annotations

import contextlib
import os
import tempfile


def file_stamp(path: str) -> tuple[str, int, int]:
    """(real path, size, modification time in ns): what changes when a file is replaced. Caches and ComfyUI's node
    fingerprints key on it."""
    st = os.stat(path)
    return os.path.realpath(path), st.st_size, st.st_mtime_ns


@contextlib.contextmanager
def atomic_output(path: str):
    """Yields a temporary path in the target's folder; renames it onto `path` if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".part", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_tagged(path: str, tensors: dict, fmt: str, version: int, metadata: dict[str, str]) -> None:
    """Tensors (made contiguous) and metadata, tagged with the format and its version, written atomically."""
    from safetensors.torch import save_file

    meta = {"format": fmt, "format_version": str(version), **metadata}
    with atomic_output(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=meta)


def read_tagged(path: str, fmt: str, version: int, what: str, remedy: str = "", tensors: bool = True
                ) -> tuple[dict, dict]:
    """(metadata, tensors on the CPU, or none with tensors=False: the header alone) of a file `write_tagged` wrote
    with `fmt`; CheckpointError (one line) for anything else: `what` names the kind of file ('training
    checkpoint'), `remedy` says what to do ('; tune again')."""
    from safetensors import safe_open

    from .errors import CheckpointError

    if not os.path.isfile(path):
        raise CheckpointError(f"no {what} at {path}")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            out = {k: f.get_tensor(k) for k in f.keys()} if tensors and meta.get("format") == fmt else {}
    except Exception as e:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors file ({str(e).strip().splitlines()[0]})") from None
    if meta.get("format") != fmt:
        raise CheckpointError(f"{path}: not a CLIPInverter {what}{remedy}")
    if meta.get("format_version") != str(version):
        raise CheckpointError(f"{path}: {what} format version {meta.get('format_version')}, this code reads "
                              f"{version}{remedy}")
    return meta, out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
