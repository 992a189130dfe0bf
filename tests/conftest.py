"""Shared fixtures: an isolated nnU-Net folder layout and a small synthetic chest dataset planned with
TinyPlanner and trained through plain ``nnUNetv2_train`` (built once per test session)."""
import os
import subprocess

import pytest

from nnunet_ext.io.paths import nnunet_command

CHEST_ID = 501
TINY = "nnextTinyPlans"


@pytest.fixture(scope="session")
def nnunet_dirs(tmp_path_factory):
    """Point nnU-Net's env vars at a fresh tree for the whole session (restored afterwards)."""
    root = tmp_path_factory.mktemp("nnunet")
    folders = {name: root / name.split("_")[1] for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for folder in folders.values():
        folder.mkdir()
    # one export process and single-threaded data loading: spawning torch workers costs more than it saves
    values = {**{k: str(v) for k, v in folders.items()}, "nnUNet_def_n_proc": "1", "nnUNet_n_proc_DA": "0"}
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield folders
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def chest_dataset(nnunet_dirs):
    """Dataset501: 6 training + 2 test chest phantoms, planned and preprocessed with TinyPlanner (3d_fullres)."""
    from nnunet_ext.planners.run import plan_and_preprocess
    from nnunet_ext.synthetic.dataset import write_dataset

    folder = write_dataset("chest", CHEST_ID, num_train=6, num_test=2, seed=0, progress=False)
    plan_and_preprocess(CHEST_ID, "TinyPlanner", ["3d_fullres"], num_processes=1)
    return folder


@pytest.fixture(scope="session")
def trained_chest_model(chest_dataset, nnunet_dirs):
    """MCDropoutTrainer fold 0 trained by the plain ``nnUNetv2_train`` command (subprocess)."""
    cmd = [nnunet_command("nnUNetv2_train"), str(CHEST_ID), "3d_fullres", "0", "-tr", "MCDropoutTrainer", "-p", TINY,
           "-device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = nnunet_dirs["nnUNet_results"] / chest_dataset.name / f"MCDropoutTrainer__{TINY}__3d_fullres"
    return model


@pytest.fixture(scope="session")
def plans_with_options():
    """``plans_with_options(nnunet_dirs, dataset_folder_name, assignments, name, source="nnextTinyPlans")``: see
    :func:`_plans_with_options`."""
    return _plans_with_options


def _plans_with_options(nnunet_dirs, dataset_folder_name: str, assignments: list, name: str,
                        source: str = "nnextTinyPlans") -> str:
    """A copy of the dataset's ``source`` plans named ``name`` with the training options ``assignments``
    (``["uncertainty_loss.samples=3"]``) written by ``nnext plan``'s own writer; returns the plans identifier. The
    copy shares the preprocessed data (same ``data_identifier``)."""
    from nnunet_ext.planners.plans_edit import write_options

    path = nnunet_dirs["nnUNet_preprocessed"] / dataset_folder_name / f"{source}.json"
    return write_options(path, assignments, None, name).stem
