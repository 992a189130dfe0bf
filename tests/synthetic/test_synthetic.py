"""Tests of the synthetic phantom generator (nnunet_ext.synthetic): dataset layout and nnU-Net integrity,
geometry, reproducibility, ID handling, and the anatomy each phantom promises."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import read_image
from nnunet_ext.synthetic.dataset import KINDS, write_dataset

N_TRAIN = 3
SEED = 7
IDS = {"chest": 601, "brain": 602, "nodule": 603, "headneck": 604}
NAMES = {"chest": "NnextChest", "brain": "NnextBrain", "nodule": "NnextNodule", "headneck": "NnextHeadNeck"}
N_CHANNELS = {"chest": 1, "brain": 4, "nodule": 1, "headneck": 2}
LABEL_VALUES = {"chest": {0, 1}, "brain": {0, 1, 2, 3}, "nodule": {0, 1}, "headneck": {0, 1, 2}}
SIDE = {"chest": ["lungmasks"], "brain": ["brainmasks"], "nodule": ["truth"], "headneck": []}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("nnUNet_raw")


@pytest.fixture(scope="module")
def datasets(raw) -> dict[str, Path]:
    return {kind: write_dataset(kind, IDS[kind], N_TRAIN, num_test=1, seed=SEED, raw_dir=raw, progress=False)
            for kind in KINDS}


def case_ids(folder: Path, split: str = "Tr") -> list[str]:
    return sorted(p.name[: -len(".nii.gz")] for p in (folder / f"labels{split}").glob("*.nii.gz"))


def load(folder: Path, case: str, split: str = "Tr"):
    """(images, label, side maps, geometries of everything) of one case."""
    n = len(json.loads((folder / "dataset.json").read_text())["channel_names"])
    imgs = [read_image(folder / f"images{split}" / f"{case}_{c:04d}.nii.gz") for c in range(n)]
    lab = read_image(folder / f"labels{split}" / f"{case}.nii.gz")
    side = {p.name[: -len(split)]: read_image(p / f"{case}.nii.gz")
            for p in folder.iterdir() if p.is_dir() and p.name.endswith(split) and p.name not in
            (f"images{split}", f"labels{split}")}
    geoms = [g for _, g in imgs] + [lab[1]] + [g for _, g in side.values()]
    return [a for a, _ in imgs], lab[0], {k: a for k, (a, _) in side.items()}, geoms


def info(folder: Path) -> dict:
    return json.loads((folder / "phantom_info.json").read_text())


# ----------------------------------------------------------------------------------------- all phantoms

@pytest.mark.parametrize("kind", list(KINDS))
def test_layout_and_nnunet_integrity(kind, datasets):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    folder = datasets[kind]
    assert folder.name == f"Dataset{IDS[kind]:03d}_{NAMES[kind]}"
    verify_dataset_integrity(str(folder), num_processes=1)  # raises on any problem
    dj = json.loads((folder / "dataset.json").read_text())
    assert dj["numTraining"] == N_TRAIN and dj["file_ending"] == ".nii.gz"
    assert dj["channel_names"] == KINDS[kind].channel_names and len(dj["channel_names"]) == N_CHANNELS[kind]
    assert dj["labels"] == KINDS[kind].labels
    if kind == "brain":
        assert dj["regions_class_order"] == [1, 2, 3]
        assert dj["labels"]["whole tumor"] == [1, 2, 3] and dj["labels"]["enhancing tumor"] == [3]
    assert len(case_ids(folder, "Tr")) == N_TRAIN and len(case_ids(folder, "Ts")) == 1
    assert len(list((folder / "imagesTs").glob("*.nii.gz"))) == N_CHANNELS[kind]
    for side in SIDE[kind]:
        assert sorted(p.name for p in (folder / f"{side}Tr").iterdir()) == [f"{c}.nii.gz" for c in case_ids(folder)]
        assert len(list((folder / f"{side}Ts").iterdir())) == 1
    meta = info(folder)
    assert meta["kind"] == kind and set(meta["cases"]) == set(case_ids(folder, "Tr")) | set(case_ids(folder, "Ts"))
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary leftovers


@pytest.mark.parametrize("kind", list(KINDS))
def test_all_labels_present(kind, datasets):
    found = set()
    for case in case_ids(datasets[kind]):
        _, lab, _, _ = load(datasets[kind], case)
        assert lab.dtype == np.uint8 and lab.any()
        found |= set(np.unique(lab).tolist())
    assert found == LABEL_VALUES[kind]


@pytest.mark.parametrize("kind", list(KINDS))
def test_geometry(kind, datasets):
    folder = datasets[kind]
    meta = info(folder)
    for split in ("Tr", "Ts"):
        for case in case_ids(folder, split):
            imgs, lab, side, geoms = load(folder, case, split)
            assert all(g.matches(geoms[0]) and g.direction == geoms[0].direction for g in geoms)
            assert all(a.shape == lab.shape == tuple(meta["size_zyx"]) for a in imgs + list(side.values()))
            g = geoms[0]
            assert np.allclose(g.origin, meta["origin_xyz"]) and np.allclose(g.spacing, meta["spacing_xyz"])
            assert np.allclose(g.direction, np.eye(3).ravel())
            assert min(abs(o) for o in g.origin) > 10.0  # a real, non-identity origin made it into the file
    sx, sy, sz = meta["spacing_xyz"]
    if kind == "chest":
        assert sx == sy and 2.0 <= sz / sx <= 3.0
    if kind == "headneck":
        assert sz > 1.2 * sx
    if kind == "nodule":
        assert max(meta["spacing_xyz"]) <= 1.0 and tuple(meta["size_zyx"]) == (32, 32, 32)


@pytest.mark.parametrize("kind", list(KINDS))
def test_reproducible_and_case_independent_of_n(kind, datasets, tmp_path):
    # one training + one test case with the same seed must equal case 0 of the 3 + 1 case dataset
    again = write_dataset(kind, 1, 1, num_test=1, seed=SEED, raw_dir=tmp_path / "a", progress=False)
    other = write_dataset(kind, 1, 1, seed=SEED + 1, raw_dir=tmp_path / "b", progress=False)
    for split in ("Tr", "Ts"):
        ref_case, new_case = case_ids(datasets[kind], split)[0], case_ids(again, split)[0]
        assert ref_case == new_case
        ref, new = load(datasets[kind], ref_case, split), load(again, new_case, split)
        for a, b in zip(ref[0] + [ref[1]] + list(ref[2].values()), new[0] + [new[1]] + list(new[2].values()),
                        strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        for f in sorted((datasets[kind] / f"labels{split}_raters").glob(f"{ref_case}_rater*.nii.gz")):
            assert np.array_equal(read_image(f)[0], read_image(again / f"labels{split}_raters" / f.name)[0])
    diff_imgs, diff_lab, _, _ = load(other, case_ids(other)[0])
    ref_imgs, ref_lab, _, _ = load(datasets[kind], case_ids(datasets[kind])[0])
    assert not np.array_equal(diff_imgs[0], ref_imgs[0]) and not np.array_equal(diff_lab, ref_lab)


@pytest.mark.parametrize("kind", list(KINDS))
def test_existing_id_refused_then_overwritten(kind, tmp_path):
    old = write_dataset(kind, 42, 1, name="Old", raw_dir=tmp_path, progress=False)
    with pytest.raises(InputError, match=r"\b42\b"):
        write_dataset(kind, 42, 2, name="New", raw_dir=tmp_path, progress=False)
    assert old.is_dir() and not (tmp_path / "Dataset042_New").exists()
    new = write_dataset(kind, 42, 2, name="New", raw_dir=tmp_path, overwrite=True, progress=False)
    assert new == tmp_path / "Dataset042_New" and not old.exists()
    assert json.loads((new / "dataset.json").read_text())["numTraining"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset042_New"]


def test_nothing_half_written_on_failure(tmp_path, monkeypatch):
    import nnunet_ext.synthetic.chest as chest

    old = write_dataset("chest", 9, 1, raw_dir=tmp_path, progress=False)
    calls = []
    real = chest.generate_chest_case

    def failing(rng, size):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(rng, size)

    monkeypatch.setattr(chest, "generate_chest_case", failing)
    with pytest.raises(RuntimeError, match="boom"):
        write_dataset("chest", 9, 3, name="Broken", raw_dir=tmp_path, overwrite=True, progress=False)
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [old.name]  # old dataset intact, no temp folder
    assert json.loads((old / "dataset.json").read_text())["numTraining"] == 1


def test_raw_dir_from_env_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    with pytest.raises(InputError, match="nnUNet_raw"):
        write_dataset("nodule", 5, 1, progress=False)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "env"))
    assert write_dataset("nodule", 5, 1, progress=False) == tmp_path / "env" / "Dataset005_NnextNodule"
    out = write_dataset("nodule", 5, 1, raw_dir=tmp_path / "arg", progress=False)
    assert out == tmp_path / "arg" / "Dataset005_NnextNodule"


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="lungs"), "unknown phantom"), (dict(dataset_id=0), "dataset ID"), (dict(dataset_id=1000), "ID"),
    (dict(num_train=0), "training"), (dict(size=(8, 64, 64)), "size"), (dict(name="a b"), "name"),
    (dict(kind="nodule", raters=5), "raters"), (dict(kind="nodule", raters=1), "raters"),
    (dict(raters=3), "raters"),
])
def test_bad_arguments(kwargs, match, tmp_path):
    args = dict(kind="chest", dataset_id=1, num_train=1, raw_dir=tmp_path, progress=False) | kwargs
    with pytest.raises(InputError, match=match):
        write_dataset(**args)
    assert not list(tmp_path.iterdir())


def test_size_override_scales_anatomy(tmp_path):
    from nnunet_ext.synthetic import generate_chest_case

    small = generate_chest_case(np.random.default_rng(0), (24, 48, 40))
    assert small.label.shape == (24, 48, 40) and small.images[0].shape == (24, 48, 40)
    lungs = small.side_maps["lungmasks"]
    assert {1, 2} <= set(np.unique(lungs).tolist()) and small.label.any()
    # the body still fits: the border of the field of view is air
    ct = small.images[0]
    assert ct[:, [0, -1], :].max() < -800 and ct[:, :, [0, -1]].max() < -800
    assert np.allclose(small.geometry.spacing, (4.5, 4.5, 10.0))


# ----------------------------------------------------------------------------------------- chest

def test_chest_anatomy(datasets):
    folder = datasets["chest"]
    meta = info(folder)
    in_lung = total = 0
    distractor_hu = []
    for case in case_ids(folder):
        (ct,), lab, side, geoms = load(folder, case)
        lungs = side["lungmasks"]
        assert ct.dtype == np.int16 and ct[0, 0, 0] < -900  # air outside the body
        assert -900 <= ct[(lungs > 0) & (lab == 0)].mean() <= -800
        # lungmask R231 convention: 1 = right lung = low x index (patient right is -x in LPS)
        x_right, x_left = np.nonzero(lungs == 1)[2].mean(), np.nonzero(lungs == 2)[2].mean()
        assert x_right < ct.shape[2] / 2 < x_left
        in_lung += int(((lungs > 0) & (lab > 0)).sum())
        total += int((lab > 0).sum())
        img = sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz"))
        for t in meta["cases"][case]["tumours"]:
            mm = img.TransformContinuousIndexToPhysicalPoint([float(v) for v in t["centre_voxel_zyx"][::-1]])
            assert np.allclose(mm, t["centre_mm_xyz"], atol=0.01)
        assert meta["cases"][case]["distractors"]
        for d in meta["cases"][case]["distractors"]:
            z, y, x = np.rint(d["centre_voxel_zyx"]).astype(int)
            assert lungs[z, y, x] == 0 and lab[z, y, x] == 0 and d["fraction_in_lung"] == 0
            distractor_hu.append(float(np.median(ct[z, y - 1:y + 2, x - 1:x + 2])))
    assert in_lung / total > 0.7  # most tumour voxels lie inside the lungs
    assert np.mean(distractor_hu) > -20  # tumour-like soft tissue, not the surrounding fat (~ -90 HU)


def test_chest_tumour_locations_cover_pleura_cases():
    from nnunet_ext.synthetic import generate_chest_case

    tumours = [t for s in range(12) for t in generate_chest_case(np.random.default_rng(s)).info["tumours"]]
    assert {t["location"] for t in tumours} == {"inside", "pleural", "crossing"}
    assert all(t["touches_pleura"] for t in tumours if t["location"] == "pleural")
    assert all(t["crosses_pleura"] and t["fraction_in_lung"] < 1 for t in tumours if t["location"] == "crossing")
    assert all(t["fraction_in_lung"] == 1 for t in tumours if t["location"] != "crossing")


# ----------------------------------------------------------------------------------------- brain

def test_brain_regions_and_contrast(datasets):
    folder = datasets["brain"]
    regions = KINDS["brain"].labels
    for case in case_ids(folder):
        (t1, t1ce, t2, flair), lab, side, _ = load(folder, case)
        wt, tc, et = (np.isin(lab, regions[r]) for r in ("whole tumor", "tumor core", "enhancing tumor"))
        assert et.any() and (et <= tc).all() and (tc <= wt).all() and et.sum() < tc.sum() < wt.sum()
        # spatial nesting: the core is wrapped in oedema, the necrosis in enhancing rim
        tc_ring = ndimage.binary_dilation(tc) & ~tc
        nec = lab == 2
        nec_ring = ndimage.binary_dilation(nec) & ~nec
        assert wt[tc_ring].mean() > 0.95 and tc[nec_ring].mean() > 0.95
        assert t1ce[lab == 3].mean() > 1.5 * t1ce[lab == 2].mean()  # enhancing rim vs necrotic core
        brain = (side["brainmasks"] > 0) & (lab == 0)
        assert flair[lab == 1].mean() > 1.5 * flair[brain].mean()  # oedema bright on FLAIR
        assert wt.sum() and (side["brainmasks"] > 0)[wt].mean() > 0.95
        for img in (t1, t1ce, t2, flair):
            assert img.dtype == np.float32 and img.min() >= 0 and img[0, 0, 0] == 0 and img[-1, -1, -1] == 0


# ----------------------------------------------------------------------------------------- nodule

def test_nodule_raters(datasets):
    folder = datasets["nodule"]
    agree_hu, disagree_hu = [], []
    for case in case_ids(folder):
        (ct,), lab, _, _ = load(folder, case)
        files = sorted((folder / "labelsTr_raters").glob(f"{case}_rater*.nii.gz"))
        assert [f.name for f in files] == [f"{case}_rater{k}.nii.gz" for k in range(4)]
        raters = [read_image(f)[0] for f in files]
        assert np.array_equal(raters[0], lab)
        assert all(r.any() for r in raters)
        assert any(not np.array_equal(raters[0], r) for r in raters[1:])
        votes = np.sum(raters, axis=0)
        agree_hu.append(ct[votes == len(raters)].mean())
        disagree_hu.append(ct[(votes > 0) & (votes < len(raters))].mean())
    assert all(d < a - 100 for a, d in zip(agree_hu, disagree_hu))  # raters disagree at the low-density rim
    assert len(list((folder / "labelsTs_raters").iterdir())) == 4


def test_nodule_rater_count_option(tmp_path):
    folder = write_dataset("nodule", 7, 1, raw_dir=tmp_path, progress=False, raters=2)
    assert len(list((folder / "labelsTr_raters").iterdir())) == 2
    assert info(folder)["options"] == {"raters": 2}


# ----------------------------------------------------------------------------------------- head and neck

def test_headneck_pet_lesions(datasets):
    folder = datasets["headneck"]
    has_node = []
    for case in case_ids(folder):
        (ct, pet), lab, _, _ = load(folder, case)
        assert (lab == 1).any()
        has_node.append(bool((lab == 2).any()))
        body = (ct > -500) & (lab == 0)
        assert pet.dtype == np.float32 and pet.min() >= 0
        assert pet[lab > 0].mean() > 3 * pet[body].mean()
        assert ct[lab == 1].mean() > -100  # soft-tissue density, not airway
    assert any(has_node)
    # physiological uptake (brain, tonsils, glands) is hot but unlabelled
    (ct, pet), lab, _, _ = load(folder, case_ids(folder)[0])
    assert (pet[lab == 0] > 4).sum() > 20


# ----------------------------------------------------------------------------------------- CLI

def test_cli(tmp_path, capsys, monkeypatch):
    from nnunet_ext.cli.main import main

    assert main(["synth", "chest", "-d", "501", "-n", "2", "--raw", str(tmp_path), "--no-progress"]) == 0
    folder = tmp_path / "Dataset501_NnextChest"
    assert len(list((folder / "imagesTr").iterdir())) == 2 and not (folder / "imagesTs").exists()
    capsys.readouterr()
    assert main(["synth", "chest", "-d", "501", "-n", "2", "--raw", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "501" in err and "--overwrite" in err
    monkeypatch.delenv("nnUNet_raw", raising=False)
    assert main(["synth", "brain", "-d", "502", "-n", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nnUNet_raw" in err
    assert main(["synth", "nodule", "-d", "503", "-n", "1", "--n-test", "1", "--raters", "3", "--seed", "3",
                 "--size", "24", "24", "24", "--name", "Tiny", "--raw", str(tmp_path), "--no-progress"]) == 0
    tiny = tmp_path / "Dataset503_Tiny"
    assert read_image(tiny / "imagesTs" / "nodule_test_000_0000.nii.gz")[0].shape == (24, 24, 24)
    assert len(list((tiny / "labelsTs_raters").iterdir())) == 3


def test_cli_module_is_light():
    code = "import sys, nnunet_ext.synthetic.cli; assert 'torch' not in sys.modules and 'scipy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
