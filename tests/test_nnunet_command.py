"""nnU-Net's console scripts are found next to the running interpreter when PATH lacks them (an environment used
without activating it: ``/path/to/venv/bin/nnext demo``)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_ext.errors import InputError
from nnunet_ext.paths import nnunet_command


def test_found_next_to_the_interpreter_with_path_stripped(monkeypatch):
    monkeypatch.setenv("PATH", "")
    path = nnunet_command("nnUNetv2_train")
    assert Path(path).parent == Path(sys.executable).parent and os.access(path, os.X_OK)
    # the script runs with an empty PATH (its shebang names the interpreter)
    proc = subprocess.run([path, "-h"], env={**os.environ, "PATH": ""}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "usage" in proc.stdout.lower()


def test_path_is_the_fallback(monkeypatch, tmp_path):
    fake = tmp_path / "nnUNetv2_fake_tool"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert nnunet_command("nnUNetv2_fake_tool") == str(fake)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(InputError, match="nnUNetv2_fake_tool not found next to"):
        nnunet_command("nnUNetv2_fake_tool")


def test_demo_starts_training_through_the_helper(monkeypatch):
    """demo.py has no bare command name left (the failure was FileNotFoundError: 'nnUNetv2_train')."""
    import inspect

    from nnunet_ext import demo

    src = inspect.getsource(demo)
    assert 'nnunet_command("nnUNetv2_train")' in src and 'shutil.which("nnUNetv2_train")' not in src
