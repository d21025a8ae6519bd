"""The two test lanes (tests/lanes.py): an exclusive test runs alone and is not starved, a lane knows when it is
alone, and workers share one copy of each kit."""
from __future__ import annotations

import threading
import time

import lanes


def _enter_later(access, log: list, name: str, hold: threading.Event) -> threading.Thread:
    def run():
        with access:
            log.append(f"{name} in")
            hold.wait(10)
        log.append(f"{name} out")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_an_exclusive_test_waits_for_the_running_one_and_the_next_waits_for_it(tmp_path):
    me, other = lanes.Lanes(str(tmp_path), "gw0"), lanes.Lanes(str(tmp_path), "gw1")
    log: list[str] = []
    running = me.access(exclusive=False)
    running.__enter__()                                       # lane gw0 runs an ordinary test
    go_exclusive, go_next = threading.Event(), threading.Event()
    exclusive = _enter_later(other.access(exclusive=True), log, "exclusive", go_exclusive)
    time.sleep(0.3)
    assert log == []                                          # it waits for the running test
    following = _enter_later(me.access(exclusive=False), log, "next", go_next)
    time.sleep(0.3)
    running.__exit__()
    time.sleep(0.3)
    assert log == ["exclusive in"]                            # the lane's next test did not slip in before it
    go_exclusive.set()
    exclusive.join(5)
    time.sleep(0.3)
    go_next.set()
    following.join(5)
    assert log == ["exclusive in", "exclusive out", "next in", "next out"]
    me.close(), other.close()


def test_ordinary_tests_of_both_lanes_run_together(tmp_path):
    a, b = lanes.Lanes(str(tmp_path), "gw0"), lanes.Lanes(str(tmp_path), "gw1")
    with a.access(exclusive=False):
        log: list[str] = []
        hold = threading.Event()
        t = _enter_later(b.access(exclusive=False), log, "b", hold)
        time.sleep(0.3)
        assert log == ["b in"]
        hold.set()
        t.join(5)
    a.close(), b.close()


def test_a_lane_sees_the_other_until_its_process_lets_go(tmp_path):
    a, b = lanes.Lanes(str(tmp_path), "gw0"), lanes.Lanes(str(tmp_path), "gw1")
    assert a.others_running() == 1 and b.others_running() == 1
    b.close()                                                 # gw1 ended: gw0 is alone and takes every core
    assert a.others_running() == 0
    a.close()


class _Factory:
    """pytest's tmp_path_factory as xdist sets it up: a worker's base temp folder inside the controller's."""

    def __init__(self, base):
        self.base = base

    def getbasetemp(self):
        return self.base

    def mktemp(self, name):
        path = self.base / f"{name}0"
        path.mkdir(parents=True)
        return path


def test_workers_write_one_kit_into_the_runs_shared_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("CLIPINVERTER_KIT_CACHE", raising=False)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    worker = _Factory(tmp_path / "popen-gw1")
    folder, owned = lanes.kit_folder(worker, "kit256")
    assert folder == str(tmp_path / "shared" / "kit256") and not owned  # the controller removes it
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    folder, owned = lanes.kit_folder(_Factory(tmp_path), "kit256")  # no workers: a folder of this process's
    assert folder == str(tmp_path / "kit2560") and owned
    monkeypatch.setenv("CLIPINVERTER_KIT_CACHE", str(tmp_path / "cache"))
    folder, owned = lanes.kit_folder(worker, "kit256")
    assert folder == str(tmp_path / "cache" / "kit256") and not owned  # a developer's cache is kept
