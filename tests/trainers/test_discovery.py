"""Trainer discovery: the start-up hook makes plain nnU-Net find the extension trainers in any process."""
import os
import subprocess
import sys

from nnunet_ext import _autoregister
from nnunet_ext.cli.main import main
from nnunet_ext.trainers.registry import TRAINERS


def _python(code: str, **env_changes) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("nnUNet_extTrainer", _autoregister.OPT_OUT_VAR)}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_fresh_interpreter_has_shim_dir():
    value = _python("import os; print(os.environ.get('nnUNet_extTrainer'))")
    assert value == _autoregister.SHIM_DIR


def test_user_value_is_kept_first(tmp_path):
    value = _python("import os; print(os.environ['nnUNet_extTrainer'])", nnUNet_extTrainer=str(tmp_path))
    assert value.split(os.pathsep) == [str(tmp_path), _autoregister.SHIM_DIR]


def test_opt_out():
    value = _python("import os; print(os.environ.get('nnUNet_extTrainer'))", NNUNET_EXT_NO_AUTOREGISTER="1")
    assert value == "None"


def test_register_is_idempotent():
    env = {"nnUNet_extTrainer": "/a"}
    _autoregister.register(env)
    _autoregister.register(env)
    assert env["nnUNet_extTrainer"].split(os.pathsep) == ["/a", _autoregister.SHIM_DIR]


def test_spawned_children_register_even_if_parent_dropped_it(tmp_path):
    # the parent removes the variable in-process; a spawn child is a fresh interpreter and re-runs the hook
    script = tmp_path / "spawn_check.py"
    script.write_text(
        "import os, multiprocessing as mp\n"
        "def f(_):\n    return os.environ.get('nnUNet_extTrainer')\n"
        "if __name__ == '__main__':\n"
        "    os.environ.pop('nnUNet_extTrainer', None)\n"
        "    with mp.get_context('spawn').Pool(1) as p: print(p.map(f, [0])[0])\n"
    )
    assert _python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')") == _autoregister.SHIM_DIR


def test_nnunet_lookup_finds_real_classes_and_they_pickle():
    code = (
        "import pickle\n"
        "from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name as find\n"
        "for name in %r:\n"
        "    cls = find(name)\n"
        "    assert pickle.loads(pickle.dumps(cls)) is cls\n"
        "    print(name, cls.__module__)\n" % (list(TRAINERS),)
    )
    lines = _python(code).splitlines()
    found = dict(line.split() for line in lines if line.split()[0] in TRAINERS)
    assert found == {name: module for name, (module, _) in TRAINERS.items()}


def test_nnext_trainers_lists_every_trainer(capsys):
    assert main(["trainers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name, (_, description) in TRAINERS.items():
        assert any(line.split()[:1] == [name] and line.endswith(description) for line in lines), name


def test_startup_hook_stays_light():
    # the .pth hook runs in every Python process: it must not pull in torch, numpy or nnU-Net
    code = "import sys, nnunet_ext; print(sorted(m for m in ('torch', 'numpy', 'nnunetv2') if m in sys.modules))"
    loaded = _python(code)
    assert loaded == "[]"
