"""Training data: both layouts, pairing by stem, refusals naming the file, the split, flips, per-rank shards."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from clipinverter_core.errors import DataError
from clipinverter_core.training.data import CaptionedImages, ShardedBatches, find_items, read_captions, split


@pytest.mark.parametrize("layout", ["folders", "jsonl", "csv"])
def test_every_layout_gives_the_same_items(caption_folder, layout):
    items = find_items(caption_folder(5, layout))
    assert [it.name for it in items] == [f"{i:05d}" for i in range(5)]
    assert read_captions(items[3]) == ("a face number 3 with blonde hair", "a face number 3 with black hair")


def test_images_are_the_editors_256_input_in_minus_one_one(caption_folder):
    from clipinverter_core.images import load_image, pil_to_encoder_input

    items = find_items(caption_folder(2, size=80))
    x, caption = CaptionedImages(items)[(0, 1)]
    assert x.shape == (3, 256, 256) and caption in read_captions(items[1])
    assert torch.equal(x, pil_to_encoder_input(load_image(items[1].image))[0])


def test_hflip_is_a_seeded_mirror_and_captions_vary_per_fetch(caption_folder):
    items = find_items(caption_folder(1))
    plain = CaptionedImages(items, hflip=0.0)[(0, 0)][0]
    flipped = CaptionedImages(items, hflip=1.0)[(0, 0)][0]
    assert torch.equal(flipped, plain.flip(-1))
    half = CaptionedImages(items, hflip=0.5, seed=3)
    draws = [half[(e, 0)] for e in range(40)]
    n_flipped = sum(torch.equal(x, plain.flip(-1)) for x, _ in draws)
    assert 5 < n_flipped < 35 and len({c for _, c in draws}) == 2
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(draws, [half[(e, 0)] for e in range(40)]))


def test_a_missing_caption_file_is_refused_naming_the_image(caption_folder):
    root = caption_folder(4)
    os.remove(os.path.join(root, "captions", "00002.txt"))
    with pytest.raises(DataError, match=r"00002\.jpg: no caption file .*00002\.txt"):
        find_items(root)


def test_a_caption_without_its_image_is_refused(caption_folder):
    root = caption_folder(3)
    os.remove(os.path.join(root, "images", "00001.jpg"))
    with pytest.raises(DataError, match=r"00001\.txt: no image 00001"):
        find_items(root)


def test_an_empty_caption_file_is_refused_naming_it(caption_folder):
    root = caption_folder(3)
    open(os.path.join(root, "captions", "00001.txt"), "w").write("\n  \n")
    with pytest.raises(DataError, match=r"00001\.txt: empty caption file"):
        find_items(root)


def test_an_unreadable_image_is_refused_naming_it(caption_folder):
    root = caption_folder(3)
    open(os.path.join(root, "images", "00000.jpg"), "wb").write(b"not a picture")
    with pytest.raises(DataError, match=r"00000\.jpg: not a readable image"):
        find_items(root)


def test_a_truncated_image_is_reported_at_fetch_in_one_line(caption_folder):
    root = caption_folder(2, size=200)
    path = os.path.join(root, "images", "00001.jpg")
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 3])
    items = find_items(root)  # the header is intact
    with pytest.raises(DataError, match=r"00001\.jpg: not a readable image") as e:
        CaptionedImages(items)[(0, 1)]
    assert "\n" not in str(e.value)


def test_metadata_naming_a_missing_file_is_refused(caption_folder):
    root = caption_folder(3, "jsonl")
    os.remove(os.path.join(root, "00001.jpg"))
    with pytest.raises(DataError, match=r"metadata\.jsonl, line 3: no image at .*00001\.jpg"):
        find_items(root)


def test_metadata_with_an_empty_text_is_refused(caption_folder):
    root = caption_folder(2, "csv")
    with open(os.path.join(root, "metadata.csv"), "a") as f:
        f.write("00001.jpg,\n")
    with pytest.raises(DataError, match=r"metadata\.csv, line 6: empty caption for 00001\.jpg"):
        find_items(root)


def test_a_folder_of_neither_layout_says_what_it_needs(tmp_path):
    with pytest.raises(DataError, match="neither images/ \\+ captions/ nor metadata"):
        find_items(str(tmp_path))


def test_split_by_fraction_is_seeded_and_disjoint(caption_folder):
    items = find_items(caption_folder(20))
    train, val = split(items, 0.25, seed=1)
    assert len(val) == 5 and len(train) == 15 and not {i.name for i in train} & {i.name for i in val}
    assert [i.name for i in split(items, 0.25, seed=1)[1]] == [i.name for i in val]
    assert [i.name for i in split(items, 0.25, seed=2)[1]] != [i.name for i in val]


def test_split_from_a_list_file(caption_folder, tmp_path):
    items = find_items(caption_folder(6))
    (tmp_path / "val.txt").write_text("00004.jpg\n00001\n")
    train, val = split(items, val_list=str(tmp_path / "val.txt"))
    assert [i.name for i in val] == ["00001", "00004"] and len(train) == 4
    (tmp_path / "bad.txt").write_text("00009\n")
    with pytest.raises(DataError, match="'00009' is not in the data set"):
        split(items, val_list=str(tmp_path / "bad.txt"))


def test_two_ranks_read_disjoint_halves_of_the_same_global_batches():
    one = list(ShardedBatches(10, 4, seed=5, steps=6))
    r0 = list(ShardedBatches(10, 4, rank=0, world=2, seed=5, steps=6))
    r1 = list(ShardedBatches(10, 4, rank=1, world=2, seed=5, steps=6))
    assert [a + b for a, b in zip(r0, r1)] == one
    assert len({e for b in one for e, _ in b}) == 3  # 2 batches per epoch (drop_last), new order each epoch
    assert list(ShardedBatches(10, 4, seed=5, start=4, steps=2)) == one[4:]  # a resume reads what it would have
    with pytest.raises(DataError, match="multiple of the number of processes"):
        ShardedBatches(10, 3, world=2)
    with pytest.raises(DataError, match="fewer than one batch"):
        ShardedBatches(3, 4)
