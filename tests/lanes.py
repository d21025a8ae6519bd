"""Two lanes on CI's two cores: pytest-xdist's workers (scripts/test.sh runs `-n 2`), kept within CI's memory.

Alone, the suite left a core idle a third of the time (Python between the convolutions, imports of the CLI runs,
dlib, PyAV, torch.compile). Two workers fill it; this plugin keeps them from getting in each other's way:

- Threads. While both lanes run tests, torch in each uses its share of the cores (one of two), and so do the
  processes a test starts (OMP_NUM_THREADS). A lane alone (the other finished, or is waiting) uses them all.
- Memory. A test marked `exclusive` (the float64 training goldens peak at 11 GB, CI has 24) runs alone: it waits
  for the other lane's test to end, and that lane waits before its next one until the exclusive test is over. A
  reader-writer lock on a file (flock), with a turnstile so that the waiting exclusive test is not starved.
- Files. The kits (conftest.kit_factory and the others) are written once, in a folder the workers share (the
  run's temp root), under a lock.
A worker's output does not reach the log: conftest sends measured figures and peaks in the tests' reports.
"""
from __future__ import annotations

import fcntl
import os
import shutil

import pytest

def cores() -> int:
    return max(1, os.cpu_count() or 1)


def worker_id() -> str | None:
    return os.environ.get("PYTEST_XDIST_WORKER")


def lane_count() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def shared_folder(tmp_path_factory) -> str:
    """A folder all workers of this run see: their base temp folders' root (xdist makes them inside the
    controller's); removed by the controller when the run ends."""
    base = tmp_path_factory.getbasetemp()
    path = os.path.join(str(base.parent if worker_id() else base), "shared")
    os.makedirs(path, exist_ok=True)
    return path


def kit_folder(tmp_path_factory, name: str) -> tuple[str, bool]:
    """Where a kit (stand-in weights written once a run) lives, and whether this process removes it at its end:
    CLIPINVERTER_KIT_CACHE/name, kept across runs; else, under xdist, the run's shared folder; else a temp folder.
    Write it inside `with FileLock(folder + '.lock')`: another worker may be writing it."""
    cache = os.environ.get("CLIPINVERTER_KIT_CACHE")
    if cache:
        folder, owned = os.path.join(cache, name), False
    elif worker_id():
        folder, owned = os.path.join(shared_folder(tmp_path_factory), name), False
    else:
        folder, owned = str(tmp_path_factory.mktemp(name)), True
    os.makedirs(folder, exist_ok=True)
    return folder, owned


class FileLock:
    """flock on a file: exclusive or shared, blocking; a context manager."""

    def __init__(self, path: str, shared: bool = False):
        self.path, self.shared, self.fd = path, shared, None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


class Lanes:
    """This worker's view of the run: its lane file (held while it lives), the others', the exclusive lock."""

    def __init__(self, folder: str, me: str):
        self.folder, self.me = folder, me
        self.alive_fd = os.open(self._lane_file(me), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.alive_fd, fcntl.LOCK_EX)

    def _lane_file(self, name: str) -> str:
        return os.path.join(self.folder, f"lane-{name}")

    def others_running(self) -> int:
        """Lanes other than this one whose process still holds its lane file."""
        running = 0
        for name in os.listdir(self.folder):
            if not name.startswith("lane-") or name == f"lane-{self.me}":
                continue
            fd = os.open(os.path.join(self.folder, name), os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                running += 1
            finally:
                os.close(fd)
        return running

    def access(self, exclusive: bool):
        """The reader-writer lock for one test: shared for most, exclusive for the `exclusive` ones. The turnstile
        is held by an exclusive test while it waits, so the other lane cannot keep the lock shared forever."""
        turnstile, lock = (os.path.join(self.folder, n) for n in ("turnstile", "exclusive"))
        return _Access(turnstile, lock, exclusive)

    def close(self) -> None:
        fcntl.flock(self.alive_fd, fcntl.LOCK_UN)
        os.close(self.alive_fd)


class _Access:
    def __init__(self, turnstile: str, lock: str, exclusive: bool):
        self.turnstile, self.lock = FileLock(turnstile), FileLock(lock, shared=not exclusive)
        self.exclusive = exclusive

    def __enter__(self):
        self.turnstile.__enter__()
        if not self.exclusive:
            self.turnstile.__exit__()
        self.lock.__enter__()
        return self

    def __exit__(self, *exc):
        self.lock.__exit__()
        if self.exclusive:
            self.turnstile.__exit__()


def use_threads(n: int) -> None:
    """torch's intra-op threads in this process, and in the processes a test starts."""
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)


# The longest files (CI's --durations), started first: a lane that ends early then finds short tests to do, instead of
# one lane running an 8-minute file alone at the end. scripts/test.sh hands out whole files (--dist loadfile: a
# module's fixtures are built once) in collection order (--no-loadscope-reorder).
FIRST = ("test_training_golden.py", "test_training_run.py", "test_tuning_golden.py", "test_faults.py",
         "test_gpu_check.py", "test_cli.py", "test_tuning.py", "test_compiled.py", "test_parity.py")


def pytest_collection_modifyitems(session, config, items):
    rank = {name: k for k, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: the rest keep their order


_lanes: Lanes | None = None


def pytest_configure(config):
    config.addinivalue_line("markers", "exclusive: runs with no other test beside it (its memory; see tests/lanes.py)")


def pytest_sessionstart(session):
    global _lanes
    if worker_id():
        _lanes = Lanes(shared_folder(session.config._tmp_path_factory), worker_id())  # noqa: SLF001 - pytest's own


def pytest_unconfigure(config):
    global _lanes
    if _lanes is not None:
        _lanes.close()
        _lanes = None
    elif lane_count() > 1 or getattr(config.option, "numprocesses", None):  # the controller of a run with workers
        base = config._tmp_path_factory.getbasetemp()  # noqa: SLF001
        shutil.rmtree(os.path.join(str(base), "shared"), ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if _lanes is None:
        yield
        return
    exclusive = item.get_closest_marker("exclusive") is not None
    with _lanes.access(exclusive):
        alone = exclusive or _lanes.others_running() == 0
        use_threads(cores() if alone else max(1, cores() // lane_count()))
        yield
