"""The loop's mechanics on a tiny model of the real step's shape (tests/training_double.py): checkpoints,
an exact resume after a Ctrl-C, two gloo processes equal to one, the mismatch schedule, logs and grids."""
from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch

from clipinverter_core.training import checkpoint
from clipinverter_core.training.data import find_items, split
from clipinverter_core.training.trainer import MISMATCH_P, Schedule, Trainer, is_mismatched, rolled

from training_double import make_parts


def _trainer(root, run_dir, max_steps, batch=4, ctx=None, seed=0, **kw):
    from clipinverter_core.training import distributed

    train, val = split(find_items(root), 0.2, seed=seed)
    sched = Schedule(max_steps=max_steps, batch_size=batch, seed=seed, save_every=kw.pop("save_every", 0),
                     val_every=kw.pop("val_every", 0), image_every=kw.pop("image_every", 0), board_every=1,
                     progress=False, **kw)
    return Trainer(make_parts(), train, val, str(run_dir), sched, {"what": "test"}, torch.device("cpu"),
                   torch.float64, ctx or distributed.Context())


def _params(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.params.items()}


class _CtrlC(Exception):
    pass


def test_a_run_stopped_by_ctrl_c_and_resumed_ends_bit_identical(caption_folder, tmp_path):
    root = caption_folder(10)
    straight = _trainer(root, tmp_path / "a", 7)
    straight.run()

    stopped = _trainer(root, tmp_path / "b", 7)
    stopped.on_step = lambda step: step == 3 and stopped.stop._handle(2, None)  # Ctrl-C during step 3
    assert stopped.run() == 3
    state = checkpoint.load(checkpoint.checkpoint_path(str(tmp_path / "b")))
    assert state.step == 3 and state.config == {"what": "test"} and state.data_order["position"] == 1

    torch.manual_seed(1234)  # a fresh process: other RNG states until the checkpoint restores them
    resumed = _trainer(root, tmp_path / "b", 7)
    resumed.resume(state)
    assert resumed.run() == 7
    a, b = _params(straight), _params(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), {k: float((a[k] - b[k]).abs().max()) for k in a}
    sa, sb = straight.parts.optimizer.state_dict()["state"], resumed.parts.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])


def test_checkpoint_round_trips_optimiser_and_rngs(tmp_path):
    import random

    p = torch.nn.Parameter(torch.randn(3, 2, dtype=torch.float64))
    opt = torch.optim.Adam([p], lr=0.1, betas=(0.9, 0.99))
    p.grad = torch.ones_like(p)
    opt.step()
    path = str(tmp_path / "c.safetensors")
    torch.manual_seed(5), np.random.seed(6), random.seed(7)
    checkpoint.save(path, 1, {"x": 1}, {"p": p}, opt.state_dict(), {"epoch": 0})
    draws = torch.rand(2), np.random.rand(2), random.random()
    state = checkpoint.load(path)
    checkpoint.restore_rng(state.rng["tensors"], state.rng["meta"])
    assert torch.equal(torch.rand(2), draws[0]) and np.array_equal(np.random.rand(2), draws[1])
    assert random.random() == draws[2]
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3, 2, dtype=torch.float64))], lr=0.5)
    opt2.load_state_dict(state.optimizer)
    assert opt2.param_groups[0]["lr"] == 0.1 and opt2.param_groups[0]["betas"] == (0.9, 0.99)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(state.params["p"], p.detach())


def test_a_resume_on_other_data_is_refused(caption_folder, tmp_path):
    t = _trainer(caption_folder(10), tmp_path / "r", 2)
    t.run()
    state = checkpoint.load(checkpoint.checkpoint_path(str(tmp_path / "r")))
    other = _trainer(caption_folder(15), tmp_path / "r", 4)
    with pytest.raises(Exception, match="training split differs"):
        other.resume(state)


def test_mismatched_steps_are_three_in_four_and_roll_the_global_batch():
    share = np.mean([is_mismatched(0, s) for s in range(4000)])
    assert abs(share - MISMATCH_P) < 0.03
    glob = ["a", "b", "c", "d"]
    assert rolled(glob, 0, 2) + rolled(glob, 1, 2) == ["d", "a", "b", "c"]


def test_tensorboard_scalars_and_the_grid_are_written(caption_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t = _trainer(caption_folder(10), tmp_path / "g", 2, image_every=1, val_every=2, val_batch_size=2)
    t.run()
    t.log.close()
    acc = EventAccumulator(str(tmp_path / "g" / "logs"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss_real", "train/loss_cycle", "train/loss", "val/loss"} <= tags
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    from PIL import Image
    grid = Image.open(tmp_path / "g" / "images" / "train" / "0000002.png")
    assert grid.size[0] == 3 * 256 + 2 * 4 and os.path.isfile(tmp_path / "g" / "images" / "val" / "0000002.png")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DDP_STEPS = 6


def _rank_main(rank, world, port, root, run_dir, out):
    """One process as torchrun starts it: the rendezvous in the environment, distributed.init joins it."""
    from clipinverter_core.training import distributed

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    ctx, device = distributed.init("cpu")
    assert (ctx.rank, ctx.world, device) == (rank, world, "cpu")
    try:
        t = _trainer(root, run_dir, DDP_STEPS, ctx=ctx, val_every=4, val_batch_size=2)
        t.run()
        torch.save(_params(t), os.path.join(out, f"rank{rank}.pt"))
    finally:
        distributed.shutdown(ctx)


def test_two_gloo_processes_of_two_images_equal_one_of_four(caption_folder, tmp_path):
    import torch.multiprocessing as mp

    assert {is_mismatched(0, s) for s in range(DDP_STEPS)} == {False, True}  # both kinds of step
    root = caption_folder(10)
    one = _trainer(root, tmp_path / "one", DDP_STEPS, val_every=4, val_batch_size=2)
    one.run()
    mp.spawn(_rank_main, args=(2, _free_port(), root, str(tmp_path / "two"), str(tmp_path)), nprocs=2)
    ref = _params(one)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for k in ref:  # float64; only the order of the gradient sums differs
            torch.testing.assert_close(got[k], ref[k], rtol=1e-12, atol=1e-14)
    assert os.path.isfile(checkpoint.checkpoint_path(str(tmp_path / "two")))
    written = os.listdir(tmp_path / "two" / "logs")
    assert len(written) == 1  # rank 0 alone writes


def test_validation_logs_the_edit_scores_beside_the_losses(caption_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t = _trainer(caption_folder(10), tmp_path / "s", 2, val_every=2, val_batch_size=2)
    seen = []

    def score(model, losses, batch, images):  # stands in for training/scores.edit_scores
        seen.append((batch.mismatched, sorted(images)))
        return {"metric_clip_score": 0.25}

    t.parts.score = score
    t.run()
    t.log.close()
    acc = EventAccumulator(str(tmp_path / "s" / "logs"))
    acc.Reload()
    assert seen and all(m for m, _ in seen)  # every validation batch, always mismatched
    assert [e.value for e in acc.Scalars("val/metric_clip_score")] == [pytest.approx(0.25)]
