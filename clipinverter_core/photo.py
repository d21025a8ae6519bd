"""The photo flow: a photo's faces found and aligned for the encoder, edited, pasted back and quantised, written
once for every caller (the CLI's edit, edit-video and evaluate; the API).

    photo (PIL) --find_faces--> Faces (encoder input in [-1, 1], the photo, the Alignment)
          --face_targets--> the same faces at the generator's side (what identity tuning reproduces)
          --edit_photos--> edited faces in [0, 1], or the whole photo with them pasted back --pixels--> uint8
    frames --edit_frames--> the same, a chunk of frames at a time, the crops planned by align/video.py
    frames --track_crops--> each tracked face's crops through the clip, 8-bit (what identity tuning learns from)

Every conversion goes through images.py; `pixels` is the project's one quantiser (images.unit_to_uint8).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from . import devices
from .heap import release_heap, stream_heap, streamed
from .align import Alignment, FaceFilter, FaceNotFoundError, align, to_unit_tensor
from .align.crops import passthrough_crop
from .align.video import crop_frame
from .align.warp import align_quad
from .batching import pair_indices
from .errors import InputError
from .images import ENCODER_SIZE, generator_to_unit, load_image, pil_to_encoder_input, unit_to_signed, unit_to_uint8
from .latents import EditResult


@dataclass
class Faces:
    """The faces of one photo, ready for the encoder."""
    x: torch.Tensor                  # (N, 3, 256, 256) in [-1, 1], on the model's device
    photo: torch.Tensor | None       # (1, 3, H, W) in [0, 1], the photo they came from; None for a crop as it is
    alignment: Alignment | None      # where each face sits in the photo; None for a crop as it is
    given: object = None             # a crop given aligned: the PIL image as it came (face_targets resizes it)


@dataclass
class Paste:
    """Paste-back settings: the feathered blend's width (a fraction of the crop's side) and colour matching."""
    feather: float = 0.1
    color_match: float = 1.0


def find_faces(img, device, face_index: int | str = 0, if_no_face: str = "error", aligned: bool = False,
               keep: FaceFilter = FaceFilter()) -> Faces:
    """A PIL photo's faces for the encoder. `aligned`: the photo is an FFHQ-aligned crop already (resized to 256
    as the official transforms do). Otherwise FFHQ alignment of `face_index` (0 = the largest, or 'all') among the
    detections `keep` accepts; `if_no_face` 'error' raises FaceNotFoundError, 'passthrough' takes the whole photo,
    resized."""
    if aligned:
        return Faces(devices.to_device(pil_to_encoder_input(img), device), None, None, img)
    photo = to_unit_tensor(img, device)
    crops, alignment = align(photo, ENCODER_SIZE, face_index, if_no_face, keep=keep)
    return Faces(unit_to_signed(crops), photo, alignment)


def face_targets(faces: Faces, size: int) -> torch.Tensor:
    """The faces again at `size` (the generator's side) in [-1, 1], what identity tuning reproduces: cropped from
    the photo along the same quads (sharper than the encoder's 256 crop enlarged); a pass-through, or a crop
    given aligned, is the photo resized."""
    if faces.alignment is None:
        if faces.given is None:
            raise InputError("identity tuning needs the photo the faces came from")
        crop = devices.to_device(to_unit_tensor(faces.given)[0], faces.x.device)
        return unit_to_signed(passthrough_crop(0, crop, size)[0][None])
    crops = [passthrough_crop(0, faces.photo[e.batch_index], size)[0] if e.passthrough
             else align_quad(faces.photo[e.batch_index], e.quad, size)[0] for e in faces.alignment.faces]
    return unit_to_signed(torch.stack(crops))


def faces_of_photos(paths: Iterable[str], device, aligned: bool = False, warn: Callable[[str], None] = print,
                    target_size: int | None = None, keep: FaceFilter = FaceFilter()
                    ) -> tuple[list[str], torch.Tensor, torch.Tensor | None]:
    """(the paths kept, (N, 3, 256, 256) in [-1, 1], with `target_size` the same faces at that side (face_targets,
    for identity tuning) else None): each photo's largest face (or the crop as it is); photos without a face are
    left out with a warning."""
    kept, faces, targets = [], [], []
    for path in paths:
        try:
            found = find_faces(load_image(path), device, 0, aligned=aligned, keep=keep)
        except FaceNotFoundError:
            warn(f"warning: no face found in {path}; left out (pass --no-align for crops already aligned)")
            continue
        kept.append(path)
        faces.append(found.x)
        if target_size:
            targets.append(face_targets(found, target_size).cpu())
    if not faces:
        raise InputError("no face found in any image; pass --no-align for crops that are already FFHQ-aligned")
    return kept, torch.cat(faces), torch.cat(targets) if target_size else None


def edit_photos(model, faces: Faces, t: torch.Tensor, strength: float = 1.0, remap_strength: float = 1.0,
                paste: Paste | None = None, models: list | None = None):
    """(EditResult, pictures in [0, 1] (B, 3, H, W)): the faces edited with the text embeddings `t` (one, or
    one per face, or one face and many prompts: batching.pair_indices), each face alone or, with `paste`, the
    photo with the edited faces pasted back. `models`: one model per face (identity tuning gives each person a
    generator of their own); otherwise `model` edits every face."""
    from .align import paste_edits  # looked up at the call: a test stands in for it to interrupt an edit

    if models is None:
        result = model.edit(faces.x, t, strength=strength, remap_strength=remap_strength)
    else:
        idx_x, idx_t = pair_indices(len(faces.x), len(t))
        result = EditResult.cat([models[i].edit(faces.x[i:i + 1], t[j:j + 1], strength=strength,
                                                remap_strength=remap_strength) for i, j in zip(idx_x, idx_t)])
    pictures = generator_to_unit(result.image.float())
    if paste is not None:
        if faces.alignment is None:
            raise InputError("paste-back needs the alignment: the face must be found in the photo, not given aligned")
        pictures, _ = paste_edits(faces.photo, pictures, faces.alignment, paste.feather, color_match=paste.color_match)
    return result, pictures


def edit_frames(model, frames: Iterable[torch.Tensor], plan: list, t: torch.Tensor, batch: int = 8,
                strength: float = 1.0, remap_strength: float = 1.0, paste: Paste | None = None,
                tracks: dict | None = None, check: Callable[[], None] | None = None) -> Iterator[np.ndarray]:
    """The streaming sibling of edit_photos for a clip: frames ((3, H, W) in [0, 1], one at a time) are taken
    `batch` at a time, cropped as `plan` (align/video.plan_clip) says, edited with `t` (1, 512), pasted back and
    yielded as (H, W, 3) uint8 frames. At most one chunk of frames, crops and edits is alive. `tracks`: the model
    that edits each track's faces (identity tuning), `model` for the others. check(): before each chunk (cancel)."""
    paste = paste or Paste()
    frames = itertools.islice(frames, len(plan))  # frames the plan has not seen are not edited
    with stream_heap():  # heap.py: frames, crops and masks mapped on their own, given back whole
        for first in range(0, len(plan), batch):
            if check is not None:
                check()
            chunk = list(itertools.islice(frames, batch))
            if not chunk:
                return
            yield from _edit_chunk(model, chunk, plan, first, t, strength, remap_strength, paste, tracks)
            del chunk
            release_heap()  # heap.py: glibc keeps freed frames' memory otherwise


def _edit_chunk(model, frames, plan, first, t, strength, remap_strength, paste, tracks):
    photos = devices.to_device(torch.stack(frames), model.device)
    crops, entries = [], []
    for k, frame in enumerate(photos):
        c, e = crop_frame(frame, k, plan[first + k], ENCODER_SIZE)
        crops += c
        entries += e
    faces = Faces(unit_to_signed(torch.stack(crops)), photos, Alignment(entries, len(frames)))
    models = [tracks.get(e.face_index, model) for e in entries] if tracks else None
    _, pictures = edit_photos(model, faces, t, strength, remap_strength, paste, models)
    yield from pixels(pictures)


def track_crops(frames: Iterable[torch.Tensor], plan: list, size: int, every: int = 1
                ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Each track's faces through a clip, what identity tuning of the clip learns from: {track: (crops for the
    encoder (N, 3, 256, 256), the same at `size` (N, 3, size, size))}, both uint8 on the host (a 1024 crop is
    3 MB: frames never sit in float32), from every `every`-th frame where the face was detected (no held or
    interpolated crops, no pass-throughs)."""
    out: dict[int, tuple[list, list]] = {}
    for t, frame in enumerate(streamed(itertools.islice(frames, len(plan)))):
        if t % every:
            continue
        for p in plan[t]:
            if p.quad is None or not p.detected:
                continue
            small, big = out.setdefault(p.track, ([], []))
            small.append(unit_to_uint8(align_quad(frame, p.quad, ENCODER_SIZE)[0]).cpu())
            big.append(unit_to_uint8(align_quad(frame, p.quad, size)[0]).cpu())
    return {k: (torch.stack(a), torch.stack(b)) for k, (a, b) in out.items()}


def pixels(pictures: torch.Tensor) -> np.ndarray:
    """Pictures (B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8 on the host, quantised on their device (the one
    quantiser: images.unit_to_uint8), so a GPU hands over bytes, not floats."""
    return devices.to_host(unit_to_uint8(pictures.permute(0, 2, 3, 1)), dtype=None).numpy()
