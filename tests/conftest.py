"""Shared fixtures: the parity kit (official-format stand-in weights + golden outputs of the official code).

The kit lives in ../shared/parity beside the checkout (override with CLIPINVERTER_PARITY). Without it the
parity tests skip, unless CLIPINVERTER_REQUIRE_PARITY=1 (CI sets it), which turns the skip into a failure.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil

import numpy as np
import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY = os.environ.get("CLIPINVERTER_PARITY", os.path.join(ROOT, "..", "shared", "parity"))

torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))

# The device the parity and fast-path tests run the model on (bench/gpu_check.sh sets cuda). On CUDA, float32
# convolutions and matrix products default to TF32 (a 10-bit mantissa): the fp32 fidelity checks need IEEE float32.
DEVICE = os.environ.get("CLIPINVERTER_TEST_DEVICE", "cpu")
if torch.device(DEVICE).type == "cuda":
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def rel_l2(ours, ref) -> float:
    ours = np.asarray(torch.as_tensor(ours).detach().cpu().double())
    ref = np.asarray(ref.detach().cpu().double() if isinstance(ref, torch.Tensor) else ref, dtype=np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float(np.linalg.norm(ours - ref) / np.linalg.norm(ref))


def skip_unless_present(present: bool, msg: str, required_by: str) -> None:
    """Skips with `msg` when something a test needs is absent, or fails when the environment variable
    `required_by` is 1 (CI sets them: there, what is missing is a broken setup, not a reason to skip)."""
    if present:
        return
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{msg} ({required_by}=1)")
    pytest.skip(msg)


def need_parity_file(name: str = "recipe.py") -> str:
    """The path of a file of the parity kit; skips without the kit, fails in CI (CLIPINVERTER_REQUIRE_PARITY)."""
    path = os.path.join(PARITY, name)
    skip_unless_present(os.path.isfile(path), f"parity kit not found at {PARITY} (set CLIPINVERTER_PARITY)",
                        "CLIPINVERTER_REQUIRE_PARITY")
    return path


# --------------------------------------------------------------------------- measured figures in CI's log
_figures: dict[str, list[str]] = {}


def report_figure(section: str, text: str) -> None:
    """Keeps a measured figure (an error against the reference, ...) for the summary at the end of the run:
    CI runs pytest without -s, and this summary is what its log shows of the measurements."""
    _figures.setdefault(section, []).append(text)


# --------------------------------------------------------------------------- peak memory per test in CI's log
# Linux keeps a process's peak RSS (VmHWM) and resets it when "5" is written to /proc/self/clear_refs: each test's
# peak is read after it and reset before the next, so the log shows which tests set the run's peak (CI: 24 GB).
_peaks: list[tuple[float, float, str]] = []


def _vm_hwm_gb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return None


def _reset_vm_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def release_free_memory(above: int = 2 ** 30) -> None:
    """Hands the allocator's free memory back to the OS once it keeps more than `above` bytes free, so that a big
    test's peak does not stay resident under the next tests. tcmalloc (which scripts/test.sh preloads) keeps what a
    test freed for reuse; less than `above` stays for the next test, which would otherwise fault it in again (handing
    everything back before every test cost 4 to 6 s of system time in test_fast, test_pipeline and test_nodes: 79.8
    and 77.5 s against 73.2 and 73.8 s). Under glibc's malloc: malloc_trim, every time."""
    import ctypes

    libc = ctypes.CDLL(None)
    if hasattr(libc, "MallocExtension_ReleaseFreeMemory"):
        free = ctypes.c_size_t(0)
        libc.MallocExtension_GetNumericProperty(b"tcmalloc.pageheap_free_bytes", ctypes.byref(free))
        if free.value > above:
            libc.MallocExtension_ReleaseFreeMemory()
    elif hasattr(libc, "malloc_trim"):
        libc.malloc_trim(ctypes.c_size_t(0))


def _rss_gb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 2 ** 20 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


def pytest_collection_finish(session):
    """Freezes what the imports made (torch, open_clip, numpy, the test modules: about 400,000 objects) out of the
    garbage collector's view. Every full collection scanned them all: 0.2 s for each test's gc.collect() below
    (about 90 s of a run), and again in the collections Python starts by itself inside the tests. They live until
    the process ends anyway; what the tests and fixtures make afterwards is collected as before."""
    import gc

    gc.collect()
    gc.freeze()


_file_of_last_test = ""


def _collect_garbage(path: str) -> None:
    """Every test starts with the cyclic garbage of the tests before it collected. Within a file, only what was made
    since the file's first test can have become garbage (its module fixtures live to its end), so the collection
    scans that alone; at a file's first test, everything is unfrozen, collected, and frozen again. A full collection
    costs about 0.13 s with the fixtures alive: 65 s of a run when every test paid it."""
    import gc

    global _file_of_last_test
    if path != _file_of_last_test:
        _file_of_last_test = path
        gc.unfreeze()
        gc.collect()
        gc.freeze()
    else:
        gc.collect()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _collect_garbage(str(item.path))
    release_free_memory()
    before = _rss_gb()
    _reset_vm_hwm()
    yield
    peak = _vm_hwm_gb()
    if peak is not None:
        _peaks.append((peak, before, item.nodeid))


def pytest_terminal_summary(terminalreporter):
    for section, lines in _figures.items():
        terminalreporter.write_sep("-", f"measured: {section}")
        for line in lines:
            terminalreporter.write_line(line)
    if _peaks:
        import resource
        terminalreporter.write_sep("-", "peak RSS of the test process per test (setup, call, teardown), largest 15")
        for peak, before, nodeid in sorted(_peaks, reverse=True)[:15]:
            terminalreporter.write_line(f"{peak:6.2f} GB  (resident before it: {before:5.2f} GB)  {nodeid}")
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2 ** 20
        terminalreporter.write_line(f"largest subprocess (CLI runs, servers; a forked one counts its parent's pages): "
                                    f"{children:.2f} GB")


def _need_kit():
    need_parity_file()


def _recipe():
    spec = importlib.util.spec_from_file_location("parity_recipe", os.path.join(PARITY, "recipe.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Kit:
    """Official-format files written by the recipe, our bundle converted from them, and the golden arrays."""

    def __init__(self, folder: str, size: int, seed: int = 0):
        from clipinverter_core.weights.convert import convert

        self.size, self.folder = size, folder
        self.bundle = os.path.join(folder, "bundle.safetensors")
        names = {"e4e": "e4e_ffhq_encode.pt", "clipinverter": "pretrained_faces.pt",
                 "stylegan2": "stylegan2-ffhq-config-f.pt", "clip": "ViT-B-32.pt"}
        self.files = {k: os.path.join(folder, v) for k, v in names.items()}
        if not os.path.isfile(self.bundle):  # a kept kit (CLIPINVERTER_KIT_CACHE) is reused as it is
            self.files = _recipe().write_checkpoints(folder, seed=seed, size=size)
            convert(self.files["clipinverter"], self.files["e4e"], self.files["clip"], self.bundle,
                    log=lambda *_: None)
        self.golden = dict(np.load(os.path.join(PARITY, f"golden_{size}.npz")))


@contextlib.contextmanager
def _building(path: str):
    """Holds an exclusive lock on PATH.lock while what is at PATH is looked for and, if missing, written:
    scripts/test.sh runs two pytest processes at once that share CLIPINVERTER_KIT_CACHE, and the second to ask for
    a kit waits for the first to finish writing it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no second process (scripts/test.sh is bash), no lock
        yield
        return
    with open(path + ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


_kits: dict = {}


@pytest.fixture(scope="session")
def kit_factory(tmp_path_factory):
    """kit_factory(size) -> Kit, built once per size per session (about 3 GB of disk each). With
    CLIPINVERTER_KIT_CACHE=DIR the kits are kept in DIR and reused by later runs (a developer's speed-up)."""
    cache = os.environ.get("CLIPINVERTER_KIT_CACHE")

    def get(size: int, seed: int = 0) -> Kit:
        _need_kit()
        key = (size, seed)
        if key not in _kits:
            name = f"kit{size}" if seed == 0 else f"kit{size}_seed{seed}"
            folder = os.path.join(cache, name) if cache else str(tmp_path_factory.mktemp(name))
            os.makedirs(folder, exist_ok=True)
            with _building(folder):
                _kits[key] = Kit(folder, size, seed)
        return _kits[key]
    yield get
    if not cache:
        for k in _kits.values():
            shutil.rmtree(k.folder, ignore_errors=True)
    _kits.clear()


_lossnets: dict = {}


@pytest.fixture(scope="session")
def lossnet_factory(tmp_path_factory):
    """lossnet_factory(seed) -> {'arcface', 'alexnet', 'moco': path}: the recipe's stand-ins of the training
    losses' networks (about 0.5 GB), kept in CLIPINVERTER_KIT_CACHE/lossnets[_seedN] when that is set."""
    cache = os.environ.get("CLIPINVERTER_KIT_CACHE")
    from clipinverter_core.lossnets import LOSS_FILES

    def get(seed: int = 0) -> dict:
        _need_kit()
        if seed not in _lossnets:
            name = "lossnets" if seed == 0 else f"lossnets_seed{seed}"
            folder = os.path.join(cache, name) if cache else str(tmp_path_factory.mktemp(name))
            paths = {k: os.path.join(folder, f) for k, f in LOSS_FILES.items()}
            with _building(folder):
                if not all(os.path.isfile(p) for p in paths.values()):
                    paths = _recipe().write_loss_networks(folder, seed)
            _lossnets[seed] = paths
        return _lossnets[seed]
    yield get
    if not cache:
        for paths in _lossnets.values():
            shutil.rmtree(os.path.dirname(next(iter(paths.values()))), ignore_errors=True)
    _lossnets.clear()


@pytest.fixture(scope="session")
def astronaut_clip(tmp_path_factory) -> str:
    """clip.mp4: the moving astronaut (synthetic_clips.moving_astronaut), 6 frames of 192x192 at 10 fps, H.264 with
    an AAC tone: the video the CLI and node video tests edit and track (made once a run)."""
    from synthetic_clips import moving_astronaut, write_clip

    path = str(tmp_path_factory.mktemp("astronaut_clip") / "in.mp4")
    write_clip(path, moving_astronaut(6), 10)
    return path


@pytest.fixture(scope="session")
def kit256(kit_factory):
    return kit_factory(256)


STANDIN_WIDTH = 64


@pytest.fixture(scope="session")
def standin256(tmp_path_factory):
    """A bundle of stand-in random weights at StyleGAN size 256 (kept in CLIPINVERTER_KIT_CACHE when set), for the
    tests of what goes around the networks. Its generator is 64 channels wide at every resolution (the released one:
    512 down to 128), and so are the convs of the encoder's style heads (512): what it saves an edit and a tuning step
    is in BENCHMARKS.md (bench/standin_cost.py). The numerics at the released widths are the parity kit's (kit256,
    kit_factory)."""
    from clipinverter_core.weights.standin import make_standin_bundle

    cache = os.environ.get("CLIPINVERTER_KIT_CACHE")
    name = f"standin256_width{STANDIN_WIDTH}.safetensors"
    path = os.path.join(cache, name) if cache else str(tmp_path_factory.mktemp("standin") / name)
    with _building(path):
        if not os.path.isfile(path):
            make_standin_bundle(path, 256, 0, width=STANDIN_WIDTH)
    return path


def write_caption_folder(root, n: int = 8, layout: str = "folders", size: int = 64, seed: int = 0) -> str:
    """A tiny captioned data set: `folders` (images/NAME.jpg + captions/NAME.txt, two captions each) or
    `jsonl` / `csv` (Hugging Face imagefolder metadata). Pictures are smooth random colours, `size` pixels."""
    import csv
    import json

    from PIL import Image

    rng = np.random.default_rng(seed)
    root = str(root)
    img_dir = os.path.join(root, "images") if layout == "folders" else root
    os.makedirs(img_dir, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"{i:05d}"
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BILINEAR).save(os.path.join(img_dir, name + ".jpg"))
        caps = [f"a face number {i} with {c} hair" for c in ("blonde", "black")]
        rows.append((name + ".jpg", caps))
    if layout == "folders":
        os.makedirs(os.path.join(root, "captions"), exist_ok=True)
        for file_name, caps in rows:
            with open(os.path.join(root, "captions", file_name[:-4] + ".txt"), "w") as f:
                f.write("\n".join(caps) + "\n")
    elif layout == "jsonl":
        with open(os.path.join(root, "metadata.jsonl"), "w") as f:
            for file_name, caps in rows:
                for c in caps:
                    f.write(json.dumps({"file_name": file_name, "text": c}) + "\n")
    else:
        with open(os.path.join(root, "metadata.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["file_name", "text"])
            for file_name, caps in rows:
                for c in caps:
                    w.writerow([file_name, c])
    return root


@pytest.fixture
def caption_folder(tmp_path):
    """caption_folder(n=8, layout='folders') -> the folder of a tiny data set written for this test."""
    count = iter(range(1000))
    return lambda n=8, layout="folders", **kw: write_caption_folder(tmp_path / f"data{next(count)}", n, layout, **kw)


@pytest.fixture(scope="session")
def loss_standins(lossnet_factory):
    """The folder holding lossnet_factory(0)'s stand-in loss networks (what `train --loss-models` takes)."""
    return os.path.dirname(lossnet_factory(0)["arcface"])
