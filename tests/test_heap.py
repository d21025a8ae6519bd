"""The streaming loops give freed frames back (clipinverter_core/heap.py): on glibc's malloc, without it, tracking
a 1080p clip grew by one float32 frame (25 MB) per frame. Run in a fresh process without the test run's tcmalloc
(ComfyUI runs on glibc's malloc): 48 frames of 1920x1080 tracked, RSS measured before and after."""
import os
import subprocess
import sys

import pytest

from clipinverter_core import heap
from clipinverter_core.align import video as V

SCRIPT = r"""
import os, sys, json
sys.path[:0] = [{root!r}, os.path.join({root!r}, "tests"), os.path.join({root!r}, "bench")]
import video_memory as vm
from clipinverter_core.videofile import frame_stream
from clipinverter_core.align.video import scan_frames
if {off}:
    import contextlib
    import clipinverter_core.heap as H
    H.release_heap, H.stream_heap = (lambda: None), contextlib.nullcontext
if not os.path.exists({clip!r}):
    vm.write_clip({clip!r}, 48, 1080, 1920)
next(frame_stream({clip!r}))  # the libraries' own first allocations, before the baseline
before = vm.rss_bytes()
detections, _ = scan_frames(frame_stream({clip!r}))
print(json.dumps({{"growth": (vm.rss_bytes() - before) / 1e9, "faces": sum(map(len, detections))}}))
"""


def _growth(tmp_path, off: bool) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    code = SCRIPT.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         clip=str(tmp_path / "clip.mp4"), off=off)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(heap._malloc_trim() is None, reason="not glibc: the heap is the allocator's own business")
def test_tracking_a_long_1080p_clip_does_not_keep_its_frames(tmp_path):
    from conftest import report_figure

    on, off = _growth(tmp_path, False), _growth(tmp_path, True)
    report_figure("heap release (glibc malloc, 48 frames of 1080p tracked)",
                  f"RSS growth {on['growth']:.2f} GB with stream_heap and release_heap, {off['growth']:.2f} GB "
                  "without")
    assert on["faces"] == off["faces"] == 48
    assert on["growth"] < 0.5 < off["growth"], (on, off)


def test_the_scan_releases_every_chunk_of_frames(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(heap, "release_heap", lambda: calls.append(1))
    V.scan_frames(torch.zeros(2 * heap.EVERY + 3, 3, 32, 32))
    assert len(calls) == 2


MAPPED = r"""
import ctypes, json, sys
sys.path.insert(0, {root!r})
import torch
from clipinverter_core import heap

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                                               "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
def mapped_frame():
    block = torch.empty(30 << 20, dtype=torch.uint8)
    del block  # glibc raises its mmap threshold to a freed mapped block's size
    before = libc.mallinfo2().hblkhd
    frame = torch.empty(3, 1080, 1920)  # one float32 frame of 1080p
    return libc.mallinfo2().hblkhd - before, frame.nbytes

if {on}:
    with heap.stream_heap() as took:
        mapped, size = mapped_frame()
    after, _ = mapped_frame()
else:
    (mapped, size), took, after = mapped_frame(), False, None
print(json.dumps({{"took": took, "mapped": mapped, "size": size, "after": after}}))
"""


def _mapped(on: bool) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    code = MAPPED.format(root=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), on=on)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(heap._malloc_trim() is None, reason="not glibc: the heap is the allocator's own business")
def test_while_streaming_a_frame_is_mapped_on_its_own_even_after_glibc_raised_its_threshold():
    """The edit pass's growth (heap.py): without stream_heap, glibc puts a frame freed-and-allocated again on its
    heap, among small blocks that pin it; with it, every frame-sized block is a mapping of its own."""
    on, off = _mapped(True), _mapped(False)
    assert on["took"] and on["mapped"] >= on["size"], on
    assert on["after"] == 0, on  # after the loop, the rest of the process allocates as glibc settles by itself
    assert off["mapped"] == 0, off  # the mechanism the fix is for, still there in this glibc


def test_the_scan_the_edit_and_the_crops_of_a_clip_map_frames_on_their_own(monkeypatch):
    import torch

    import contextlib

    from clipinverter_core import photo

    calls = []

    @contextlib.contextmanager
    def counted():
        calls.append("in")
        yield True
        calls.append("out")

    for module in (heap, photo):  # heap.streamed's loops (scan, crops, clip metrics) and edit_frames
        monkeypatch.setattr(module, "stream_heap", counted)
    V.scan_frames(torch.zeros(1, 3, 32, 32))
    list(photo.edit_frames(None, iter([]), [], None))
    photo.track_crops(iter([]), [], 256)
    assert calls == ["in", "out"] * 3
