"""One vocabulary across the CLI: every command names a concept the same way (--input, --batch-size, --quiet,
--lpips-alexnet, --device, --precision), shows its defaults in --help, and still parses the names scripts used
before (hidden from --help)."""
import argparse

import pytest

from clipinverter_core.__main__ import _parser
from clipinverter_core.cli.common import OLD_NAMES, PRECISION_CHOICES

READS_AN_INPUT = {"edit", "align", "edit-video", "evaluate"}
SHOWS_PROGRESS = {"edit", "align", "edit-video", "evaluate", "download", "train"}


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def options(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in p._actions for s in a.option_strings}


def test_every_command_names_each_concept_once():
    for name, p in commands().items():
        opts = options(p)
        if name in READS_AN_INPUT:
            assert opts["--input"].required and opts["--input"].dest == "input", name
        if name in SHOWS_PROGRESS:
            assert "--quiet" in opts and opts["--quiet"].dest in ("quiet",), name
        if name in ("edit-video", "bench", "train"):
            assert "--batch-size" in opts, name
        if name in ("evaluate", "train"):
            assert opts["--lpips-alexnet"].dest == "alexnet", name
        if "--precision" in opts:
            assert opts["--precision"].choices is None or set(opts["--precision"].choices) <= set(PRECISION_CHOICES)
        if "--device" in opts:
            assert "cpu" in opts["--device"].help and "cuda" in opts["--device"].help, name


def test_help_shows_every_default_and_hides_the_old_names():
    for name, p in commands().items():
        text = p.format_help()
        for old in OLD_NAMES:
            assert old + " " not in text and old + "," not in text, (name, old)
        for action in p._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                shown = p._get_formatter()._get_help_string(action)
                assert "default" in shown, (name, action.option_strings)


@pytest.mark.parametrize("argv, dest, value", [
    (["edit", "--model", "M", "--image", "a.png", "--text", "t", "-o", "o.png"], "input", "a.png"),
    (["align", "--image", "a.png", "-o", "o.png"], "input", "a.png"),
    (["evaluate", "--model", "M", "--images", "dir", "--text", "t", "-o", "r", "--alexnet", "x.pth"], "alexnet", "x.pth"),
    (["evaluate", "--model", "M", "--images", "dir", "--text", "t", "-o", "r"], "input", "dir"),
    (["edit-video", "--model", "M", "--input", "v.mp4", "--text", "t", "-o", "o.mp4", "--batch", "4"], "batch_size", 4),
    (["bench", "--batch", "1,8"], "batch_size", "1,8"),
    (["train", "--stage", "1", "--data", "d", "--out", "o", "--no-progress"], "quiet", True),
])
def test_the_old_names_still_parse(argv, dest, value):
    assert getattr(_parser().parse_args(argv), dest) == value


def test_the_cli_has_a_version_flag():
    assert "--version" in options(_parser())
