"""One version: pyproject.toml holds it (ComfyUI's registry reads it there), the package reports the same."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")


def test_the_package_reports_the_version_of_pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    code = "import clipinverter_core as c; print(c.__version__)"  # a fresh process: as ComfyUI or the CLI start
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), cwd="/").stdout.strip()
    assert out == version



def test_the_cli_says_its_version(capsys):
    from clipinverter_core import __version__
    from clipinverter_core.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"clipinverter_core {__version__}"
