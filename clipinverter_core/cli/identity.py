"""The identity-tuning flags (pivotal tuning, clipinverter_core/tuning) shared by edit, edit-video and evaluate,
and what they do between finding the faces and editing them."""
from __future__ import annotations

import sys

MODES_HELP = {"photo": "PTI: each face tunes a generator of its own", "clip": "STIT: the clip's crops tune one"}


def add_tuning_args(p, mode: str, alexnet: bool = True) -> None:
    """The flags; `alexnet`: add --lpips-alexnet (a command that has it already shares it)."""
    from ..tuning.settings import defaults

    d = defaults(mode)
    p.set_defaults(tuning_mode=mode)
    g = p.add_argument_group(f"identity tuning (pivotal tuning, {MODES_HELP[mode]})")
    g.add_argument("--refine-identity", action="store_true",
                   help="tune the generator to the input before editing, so the edit keeps the person (the e4e "
                        "inversion alone loses identity); about a second per step at 256 on a GPU, more on a CPU")
    g.add_argument("--tune-steps", type=int, default=d.steps, help="tuning steps")
    g.add_argument("--tune-lr", type=float, default=d.lr, help="tuning learning rate (Adam)")
    if mode == "clip":
        g.add_argument("--tune-every", type=int, default=1, metavar="N",
                       help="tune on every N-th frame's crop (the crops are kept in 8 bits: 3 MB a frame at 1024)")
    if mode == "photo":
        g.add_argument("--tune-lpips-stop", type=float, default=d.lpips_stop,
                       help="stop once the reconstruction's LPIPS is at most this (PTI's; 0: run every step)")
    g.add_argument("--tuning", metavar="FILE", help="edit with tuned weights saved before (--save-tuning), made on "
                   "this bundle, instead of tuning now")
    g.add_argument("--save-tuning", metavar="FILE",
                   help="write the tuned weights (.safetensors; several faces: FILE_0, FILE_1, ...)")
    if alexnet:
        g.add_argument("--lpips-alexnet", "--alexnet", dest="alexnet", metavar="FILE",
                       help="alexnet-owt-7be5be79.pth, the LPIPS network of the tuning (default: looked for in "
                            "models/clipinverter)")


def check_tuning_args(a) -> None:
    """Before anything loads: the flags agree, and the LPIPS network is there when tuning."""
    from ..errors import InputError
    from ..lossnets import find_loss_file

    if a.tuning and a.refine_identity:
        raise InputError("--tuning FILE edits with weights tuned before, --refine-identity tunes now: use one")
    if a.save_tuning and not a.refine_identity:
        raise InputError("--save-tuning writes what --refine-identity tunes: add --refine-identity")
    if getattr(a, "tune_every", 1) < 1:
        raise InputError(f"--tune-every must be 1 or more, not {a.tune_every}")
    if a.refine_identity:
        settings_of(a, a.tuning_mode)
        find_loss_file("alexnet", a.alexnet)


def settings_of(a, mode: str):
    from ..tuning.settings import defaults

    stop = getattr(a, "tune_lpips_stop", None)
    changes = {"lpips_stop": stop or None} if mode == "photo" else {}
    return defaults(mode).replace(steps=a.tune_steps, lr=a.tune_lr, **changes)


def tuned_models(model, x, targets, a) -> tuple[list | None, list]:
    """(the models that edit the faces x (N, 3, 256, 256), one per face, the tunings made): (None, []) where no
    tuning was asked for; with --tuning, the saved tuned weights for every face; with --refine-identity, one
    tuning per face (each face is a person, PTI's photo mode) towards `targets()` (the faces at the generator's
    side, computed only then)."""
    from ..tuning import load_tuning, with_tuning

    if a.tuning:
        tuning = load_tuning(a.tuning)
        return [with_tuning(model, tuning)] * len(x), [tuning]
    if not a.refine_identity:
        return None, []
    big = targets()
    tunings = _tune_each(model, [(x[k:k + 1], big[k:k + 1]) for k in range(len(x))], settings_of(a, "photo"), a)
    return [with_tuning(model, t) for t in tunings], tunings


def tuned_tracks(model, a, plan, frames) -> dict | None:
    """edit-video's tuning: {track: the model that edits it}, None where no tuning was asked for. --tuning: the
    saved weights for every track; --refine-identity: STIT's clip mode, one generator per tracked face, learnt
    from its crops through the clip (`frames`: the clip again, one frame at a time)."""
    from ..photo import track_crops
    from ..tuning import load_tuning, with_tuning

    if a.tuning:
        tuned = with_tuning(model, load_tuning(a.tuning))
        return {k: tuned for k in sorted({p.track for crops in plan for p in crops if p.track is not None})}
    if not a.refine_identity:
        return None
    crops = sorted(track_crops(frames, plan, model.size, a.tune_every).items())
    tunings = _tune_each(model, [c for _, c in crops], settings_of(a, "clip"), a)
    return {k: with_tuning(model, t) for (k, _), t in zip(crops, tunings)}


def _tune_each(model, groups: list, settings, a) -> list:
    """One tuning per (faces, targets) group, with a progress line and its summary each, saved with
    --save-tuning (FILE, or FILE_0, FILE_1, ... for several). The LPIPS network is loaded once for them all."""
    from ..lossnets import find_loss_file, load_lpips
    from ..tuning import refine_identity, save_tuning
    from .common import numbered

    lpips = load_lpips(find_loss_file("alexnet", a.alexnet), model.device)
    paths = numbered(a.save_tuning, len(groups), ".safetensors") if a.save_tuning else [None] * len(groups)
    tunings = []
    for k, ((faces, targets), path) in enumerate(zip(groups, paths)):
        desc = "tuning" + (f" face {k}" if len(groups) > 1 else "") + (f" ({len(faces)} frames)" if len(faces) > 1
                                                                          else "")
        with _progress(settings.steps, desc, a.quiet) as progress:
            tuning = refine_identity(model, faces, targets, settings, lpips=lpips, progress=progress)
        print(tuning.summary(), file=sys.stderr)
        if path:
            save_tuning(path, tuning)
            a.written.append(path)
            print(f"wrote {path} (tuned weights)")
        tunings.append(tuning)
    return tunings


class _progress:
    """A tqdm line over the tuning's steps (terminal only), with the last LPIPS."""

    def __init__(self, total: int, desc: str, quiet: bool):
        self.total, self.desc, self.quiet = total, desc, quiet

    def __enter__(self):
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, desc=self.desc, unit="step", file=sys.stderr, leave=False,
                        disable=True if self.quiet else None)
        return self

    def __call__(self, step: int, steps: int, visit) -> None:
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix_str(f"LPIPS {visit.lpips:.4f}", refresh=False)

    def __exit__(self, *exc):
        self.bar.close()
