"""What each optimisation of the fast path buys, measured alone: A/B pairs run interleaved in one process,
medians of several repeats (the machine may be shared). Usage: PYTHONPATH=. python bench/ablations.py [--repeats N]

Prints one line per pair: the reference-style op, the fast op, their medians (ms) and the ratio."""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from clipinverter_core.networks import Encoder4Editing
from clipinverter_core.networks.e4e import interp_matrix
from clipinverter_core.networks.stylegan2 import make_kernel
from clipinverter_core.ops import upfirdn2d
from clipinverter_core.weights.standin import _random_state

CL = torch.channels_last


def pair(name, ref, fast, repeats, note=""):
    ref(), fast()  # warm up
    ta, tb = [], []
    for r in range(repeats):
        for fn, ts in ((ref, ta), (fast, tb)) if r % 2 == 0 else ((fast, tb), (ref, ta)):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    a, b = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
    print(f"{name:<62}{a:>9.1f} ms{b:>9.1f} ms{a / b:>7.2f}x  {note}".rstrip(), flush=True)


def start(first: str, second: str) -> tuple[int, torch.Generator]:
    """Parses --repeats and prints the header; returns (repeats, a seeded generator)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    n = ap.parse_args().repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{first + ' -> ' + second:<62}{first:>12}{second:>12}{'ratio':>8}")
    return n, torch.Generator().manual_seed(0)


def main():
    n, g = start("reference", "fast")
    rnd = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    k4 = make_kernel(gain=4)
    with torch.inference_mode():
        y = rnd(1, 32, 1025, 1025)
        pair("blur after the 1024 up-conv: single-plane -> depthwise, NCHW",
             lambda: upfirdn2d(y, k4, pad=(1, 1), impl="ref"), lambda: upfirdn2d(y, k4, pad=(1, 1)), n)
        yl = y.contiguous(memory_format=CL)
        pair("  depthwise: NCHW -> channels_last",
             lambda: upfirdn2d(y, k4, pad=(1, 1)), lambda: upfirdn2d(yl, k4, pad=(1, 1)), n)
        s = rnd(1, 3, 512, 512)
        pair("RGB skip x2 upsampling: single-plane -> polyphase",
             lambda: upfirdn2d(s, k4, up=2, pad=(2, 1), impl="ref"), lambda: upfirdn2d(s, k4, up=2, pad=(2, 1)), n)
        x, w = rnd(1, 32, 1024, 1024), rnd(32, 32, 3, 3)
        xl, wl = x.contiguous(memory_format=CL), w.contiguous(memory_format=CL)
        pair("3x3 conv 32->32 at 1024^2: NCHW -> channels_last",
             lambda: F.conv2d(x, w, padding=1), lambda: F.conv2d(xl, wl, padding=1), n)
        pair("  channels_last: weight copied per call -> stored channels_last",
             lambda: F.conv2d(xl, w, padding=1), lambda: F.conv2d(xl, wl, padding=1), n)
        b = rnd(32)
        pair("bias + noise + lrelu + gain at 32x1024^2: separate -> in place",
             lambda: F.leaky_relu(xl + 0.1 * s[:, :1].repeat(1, 1, 2, 2) + b.view(1, -1, 1, 1), 0.2) * 2 ** 0.5,
             lambda: F.leaky_relu_(xl.clone().add_(s[:, :1].repeat(1, 1, 2, 2)).add_(b.view(1, -1, 1, 1)), 0.2), n)
        for bsz, c, res in ((4, 512, 32), (4, 64, 512)):
            x = rnd(bsz, c, res, res).contiguous(memory_format=CL)
            wt, st = rnd(c, c, 3, 3), rnd(bsz, c)
            def grouped():
                wm = wt[None] * st[:, None, :, None, None]
                wm = wm * torch.rsqrt(wm.square().sum([2, 3, 4]) + 1e-8)[:, :, None, None, None]
                return F.conv2d(x.reshape(1, -1, res, res), wm.reshape(-1, c, 3, 3), padding=1, groups=bsz)
            wsq = wt.square().sum([2, 3]).t()
            wcl = wt.contiguous(memory_format=CL)
            def scaled():
                d = torch.rsqrt(st.square() @ wsq + 1e-8)
                return F.conv2d(x * st[:, :, None, None], wcl, padding=1).mul_(d[:, :, None, None])
            pair(f"modulated conv, batch {bsz}, {c} ch at {res}^2: grouped -> input scaling", grouped, scaled, n)
        enc = Encoder4Editing(18)
        enc.load_state_dict(_random_state(enc, g))
        enc = enc.eval()
        fused = copy.deepcopy(enc).fuse()
        img = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1
        pair("e4e backbone, batch 1: official -> folded BatchNorm (NCHW)",
             lambda: enc.backbone(img), lambda: fused.backbone(img), n)
        feats, ffeats = enc.backbone(img), fused.backbone(img)
        pair("e4e heads (18), batch 1: official -> fast (upsampling as products)",
             lambda: enc.heads(feats), lambda: fused.heads(ffeats), n)
        p2, up = rnd(2, 512, 32, 32), interp_matrix(32, 64)
        pair("  bilinear x2 of a (2, 512, 32, 32) map: F.interpolate -> 2 products",
             lambda: F.interpolate(p2, size=(64, 64), mode="bilinear", align_corners=True),
             lambda: torch.matmul(torch.matmul(up, p2), up.t()), n)
        wide = torch.cat([rnd(512, 512, 3, 3) for _ in range(7)]) * 0.01
        p1 = rnd(1, 512, 64, 64)
        pair("  7 heads' first convs on one 64^2 map: one at a time -> one wide conv",
             lambda: [F.conv2d(p1, wide[i * 512:(i + 1) * 512], stride=2, padding=1) for i in range(7)],
             lambda: F.conv2d(p1, wide, stride=2, padding=1), n)
        both = type(ffeats)(*(torch.cat([f, f]) for f in ffeats))
        pair("  the edit's two head passes: two calls -> one batch of 2",
             lambda: (fused.heads(ffeats), fused.heads(ffeats)), lambda: fused.heads(both), n)


if __name__ == "__main__":
    main()
