"""Align Face on video frames (ComfyUI stand-ins, as test_nodes.py): tracking 'auto' follows the face when the
batch is a clip, and gives the core's tracked crops; a batch of separate photos is aligned photo by photo."""

import numpy as np
import pytest
import torch

from clipinverter_core import align as A
from clipinverter_core.align import video as V
import comfy_stubs
from comfy_stubs import RECORD
from synthetic_clips import SCALE, SIDE, path_matrix, render

from skimage import data as skimage_data  # requirements-dev.txt: a missing install fails, never skips
FRAMES = 6


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """The pack's nodes on ComfyUI stand-ins, imported under a name of this module's own."""
    with comfy_stubs.installed(str(tmp_path_factory.mktemp("comfyui"))):
        pack = comfy_stubs.load_pack(comfy_stubs.PACK_NAME + "_video")
        yield {n.define_schema().node_id: n for n in pack.nodes.NODES}


@pytest.fixture(autouse=True)
def _fresh_record():
    RECORD.reset()


@pytest.fixture(scope="module")
def clip():
    """Six frames of the moving astronaut, as ComfyUI's Get Video Components gives them: [6, 192, 192, 3]."""
    astronaut = skimage_data.astronaut()
    centre = A.ffhq_quad(A.detect_faces(astronaut)[0].landmarks).mean(0)
    frames = render(A.to_unit_tensor(astronaut), [path_matrix(t, 60, centre, SIDE, SCALE) for t in range(FRAMES)],
                    SIDE)
    return frames.movedim(1, -1).contiguous()


def test_a_clip_is_tracked_by_default(nodes, clip):
    crops, alignment = nodes["CLIPInverterAlignFace"].execute(clip, 0, 64, "error").args
    assert crops.shape == (FRAMES, 64, 64, 3) and alignment.batch_size == FRAMES
    assert [(p.current, p.total) for p in RECORD.progress] == [(2 * FRAMES, 2 * FRAMES)]
    assert RECORD.checks == 2 * FRAMES  # cancel is checked before every detection and every crop
    ours, al = V.align_clip(clip.movedim(-1, 1), 64, smoothing="auto", hold=5)
    torch.testing.assert_close(crops, ours.movedim(1, -1), rtol=0, atol=0)
    np.testing.assert_array_equal(alignment.faces[2].matrix, al.faces[2].matrix)
    assert {f.status for f in alignment.faces} == {"detected"}  # the alignment carries the track's status
    fixed = nodes["CLIPInverterAlignFace"].execute(clip, 0, 64, "error", smoothing=3.0, smoothing_mode="sigma").args
    ours = V.align_clip(clip.movedim(-1, 1), 64, smoothing=3.0, hold=5)[0]
    torch.testing.assert_close(fixed[0], ours.movedim(1, -1), rtol=0, atol=0)  # a number still fixes sigma
    assert not torch.equal(fixed[0], crops)
    off = nodes["CLIPInverterAlignFace"].execute(clip, 0, 64, "error", tracking="off").args[1]
    still = A.align(clip[2:3].movedim(-1, 1), 64)[1]
    np.testing.assert_array_equal(off.faces[2].matrix, still.faces[0].matrix)  # per frame, as a still
    assert not np.array_equal(off.faces[2].matrix, alignment.faces[2].matrix)  # the smoothed crop differs


def test_separate_photos_are_not_tracked_unless_asked(nodes, clip):
    photos = torch.stack([clip[0], clip[3].flip(1), clip[1].roll(1, -1)])  # a cut between every pair
    auto = nodes["CLIPInverterAlignFace"].execute(photos, 0, 64, "error").args[1]
    for b in range(3):
        np.testing.assert_array_equal(auto.faces[b].matrix, A.align(photos[b:b + 1].movedim(-1, 1), 64)[1].faces[0].matrix)
    on = nodes["CLIPInverterAlignFace"].execute(photos, 0, 64, "error", tracking="on", smoothing=3.0).args[1]
    assert [f.face_index for f in on.faces] == [0, 0, 0] and on.batch_size == 3


def test_paste_back_over_a_clip_steps_frame_by_frame_and_gives_the_core_s_pixels(nodes, clip):
    crops, alignment = nodes["CLIPInverterAlignFace"].execute(clip, 0, 64, "error").args
    edited = 1 - crops  # any edit
    RECORD.reset()
    out, mask = nodes["CLIPInverterPasteBack"].execute(clip, edited, alignment, 0.1).args
    assert [(p.current, p.total) for p in RECORD.progress] == [(FRAMES, FRAMES)]  # a step per frame
    assert RECORD.checks == FRAMES  # cancel before the first frame and between frames
    ours, masks = A.paste_edits(clip.movedim(-1, 1), edited.movedim(-1, 1), alignment, 0.1)
    torch.testing.assert_close(out, ours.movedim(1, -1), rtol=0, atol=0)
    torch.testing.assert_close(mask, masks, rtol=0, atol=0)
    assert out.shape == clip.shape and mask.shape == clip.shape[:3]
