"""The one writer (:mod:`nnunet_ext.io.atomic_write`, issue 19): every writer of the project under a short write and
ENOSPC (fault injection into its flush step), SimpleITK's silent short write on a real full tmpfs (as root), and the
resume of ``nnext predict`` / ``nnext lungmask`` that checks what it skips."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from bad_input_harness import CHEST_G, G, chest_ct, ct_image, disk_full, label_map, raw_dataset

from nnunet_ext.cli.main import main
from nnunet_ext.errors import DiskFullError
from nnunet_ext.io import atomic_write as aw
from nnunet_ext.io.imageio import read_image, read_probabilities, write_image, write_probabilities


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    return fig


def _src(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "src.bin"
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    return p


#: writer name -> (file name, write(path), read(path) -> something comparable)
WRITERS = {
    "write_text": ("notes.csv", lambda p: aw.write_text(p, "a,b\r\n" * 200), lambda p: p.read_text()),
    "write_json": ("summary.json", lambda p: aw.write_json(p, {"dice": [0.5] * 100}),
                   lambda p: json.loads(p.read_text())),
    "write_bytes": ("blob.bin", lambda p: aw.write_bytes(p, bytes(range(256)) * 20), lambda p: p.read_bytes()),
    "copy_file": ("copy.bin", lambda p: aw.copy_file(_src(p.parent), p), lambda p: p.read_bytes()),
    "write_image": ("seg.nii.gz", lambda p: write_image(ct_image(), G, p), lambda p: read_image(p)[0].tolist()),
    "write_image_nii": ("seg.nii", lambda p: write_image(label_map(), G, p), lambda p: read_image(p)[0].tolist()),
    "write_probabilities": ("probs.nii.gz", lambda p: write_probabilities(
        np.stack([np.full((8, 16, 16), 0.25, np.float32), np.full((8, 16, 16), 0.75, np.float32)]), G, p),
        lambda p: read_probabilities(p)[0].tolist()),
    "save_figure": ("plot.png", lambda p: aw.save_figure(_figure(), p, dpi=50), lambda p: p.read_bytes()[:8]),
    "save_npz": ("case.npz", lambda p: aw.save_npz(p, probabilities=np.random.default_rng(1).random((2, 8, 8))),
                 lambda p: np.load(p)["probabilities"].tolist()),
    "save_pickle": ("case.pkl", lambda p: aw.save_pickle({"spacing": [1.0, 2.0], "x": list(range(50))}, p),
                    lambda p: __import__("pickle").loads(p.read_bytes())),
    "torch_save": ("checkpoint_final.pth", lambda p: aw.torch_save({"w": __import__("torch").arange(300.0)}, p),
                   lambda p: __import__("torch").load(p)["w"].tolist()),
}


@pytest.mark.parametrize("mode", ["short", "enospc"])
@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_refuses_a_short_write_and_enospc(writer, mode, tmp_path, monkeypatch):
    """The old file stays untouched, no temporary is left, one line names the target."""
    name, write, read = WRITERS[writer]
    target = tmp_path / "out" / name
    write(target)  # a first, good version
    before = read(target)
    with monkeypatch.context() as m:
        m.setattr(*disk_full(mode))
        with pytest.raises(DiskFullError) as e:
            write(target)
    assert str(e.value).startswith(f"disk full while writing {target}") and "\n" not in str(e.value)
    assert read(target) == before
    assert sorted(p.name for p in target.parent.iterdir() if p.name != "src.bin") == [name]


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_writer_writes_a_readable_file_and_no_temporary(writer, tmp_path):
    name, write, read = WRITERS[writer]
    write(tmp_path / name)
    read(tmp_path / name)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(aw.TEMP_PREFIX)]


def test_verification_catches_what_a_silent_writer_leaves(tmp_path):
    """A gzip stream cut at any point, a NIfTI header whose size disagrees, an unterminated PNG: all refused."""
    good = tmp_path / "good.nii.gz"
    write_image(ct_image(), G, good)
    data = good.read_bytes()
    for cut in (0, 10, len(data) // 2, len(data) - 4):
        tmp = tmp_path / f"{aw.TEMP_PREFIX}cut.nii.gz"
        tmp.write_bytes(data[:cut])
        with pytest.raises(DiskFullError, match=r"disk full while writing .*seg\.nii\.gz"):
            aw.verify_written(str(tmp), str(tmp_path / "seg.nii.gz"))
    with pytest.raises(DiskFullError, match=r"size \(16, 16, 8\), written \(16, 16, 9\)"):
        aw.verify_written(str(good), str(good), image_size=(16, 16, 9))
    aw.verify_written(str(good), str(good), image_size=(16, 16, 8), components=1)


def test_cli_reports_disk_full_in_one_line(tmp_path, monkeypatch, capsys):
    """ENOSPC from any writer (also nnU-Net's own) is one line, exit 2."""
    ref = tmp_path / "ref"
    ref.mkdir()
    write_image(label_map(), G, ref / "c0.nii.gz")
    monkeypatch.setattr(*disk_full("enospc"))
    code = main(["evaluate", "-ref", str(ref), "-pred", str(ref), "-o", str(tmp_path / "o" / "s.json"), "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert err.startswith("nnext evaluate: error: disk full while writing ") and "no space left" in err


# ------------------------------------------------------------------------------------- a real full disk (root)

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 96 KiB tmpfs (CI runs as root; mounting needs it)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")


@needs_root
def test_simpleitk_short_write_on_a_full_tmpfs_is_caught(small_tmpfs):
    """SimpleITK prints 'wrote only N of M bytes' and raises nothing: the verification refuses the file."""
    noise = np.random.default_rng(0).random((40, 40, 40)).astype(np.float32)  # 256 KB, incompressible
    with pytest.raises(DiskFullError, match=r"disk full while writing .*big\.nii\.gz"):
        write_image(noise, G, small_tmpfs / "big.nii.gz")
    with pytest.raises(DiskFullError, match=r"disk full while writing .*big\.json"):
        aw.write_text(small_tmpfs / "big.json", json.dumps(noise.ravel()[:20000].tolist()))
    assert os.listdir(small_tmpfs) == []
    write_image(label_map(), G, small_tmpfs / "small.nii.gz")  # room left for a small one
    assert read_image(small_tmpfs / "small.nii.gz")[0].sum() == label_map().sum()


@needs_root
def test_lungmask_on_a_full_disk_fails_then_resumes(small_tmpfs, tmp_path, capsys):
    inp = tmp_path / "ct"
    inp.mkdir()
    for k in range(2):
        write_image(chest_ct(), CHEST_G, inp / f"c{k}_0000.nii.gz")
    ballast = small_tmpfs / "ballast"
    with open(ballast, "wb", buffering=0) as f:  # fill the file system to the last byte
        try:
            while True:
                f.write(b"\0" * 1024)
        except OSError:
            pass
    out = small_tmpfs / "masks"
    argv = ["lungmask", "-i", str(inp), "-o", str(out), "--backend", "threshold"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert [ln for ln in err.replace("\r", "\n").splitlines() if ": error:" in ln] == [
        f"nnext lungmask: error: disk full while writing {out / 'c0.nii.gz'} (0 bytes written)"], err
    assert not [p for p in small_tmpfs.rglob("*") if p.is_file() and p != ballast]
    ballast.unlink()
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [".nnext_settings.json", "c0.nii.gz", "c1.nii.gz"]


# ------------------------------------------------------------------------------------- a resume checks what it skips

def test_lungmask_resume_recomputes_an_empty_or_foreign_mask(tmp_path, capsys):
    inp, out = tmp_path / "ct", tmp_path / "masks"
    inp.mkdir()
    for k in range(3):
        write_image(chest_ct(), CHEST_G, inp / f"c{k}_0000.nii.gz")
    argv = ["lungmask", "-i", str(inp), "-o", str(out), "--backend", "threshold"]
    assert main(argv) == 0
    expected = read_image(out / "c0.nii.gz")[0]
    kept = (out / "c2.nii.gz").stat().st_mtime_ns
    (out / "c0.nii.gz").write_bytes(b"")                       # the 0-byte file a full disk left
    write_image(label_map(), G, out / "c1.nii.gz")             # a mask of another grid
    capsys.readouterr()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "c0.nii.gz: recomputing (c0.nii.gz: 0 bytes written)" in text, text
    assert ("c1.nii.gz: recomputing (c1.nii.gz is on another grid than c1_0000.nii.gz (size (x,y,z) (16, 16, 8) vs "
            "(48, 48, 14)") in text, text
    assert "skipping 1 existing mask" in text
    assert np.array_equal(read_image(out / "c0.nii.gz")[0], expected)
    assert np.array_equal(read_image(out / "c1.nii.gz")[0], expected)
    assert (out / "c2.nii.gz").stat().st_mtime_ns == kept
    (out / ".nnext_settings.json").unlink()                     # masks without a record are not trusted
    assert main(argv) == 0
    assert capsys.readouterr().out.count("recomputing (no settings record in the folder)") == 3


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory):
    from bad_input_models import write_untrained_model

    results = tmp_path_factory.mktemp("atomic_write_model")
    write_untrained_model(results, "nnUNetTrainer")
    return results


def _predict_argv(untrained_model, tmp: Path, monkeypatch):
    from bad_input_models import DATASET_ID, PLANS

    monkeypatch.setenv("nnUNet_results", str(untrained_model))
    src = raw_dataset(tmp / "raw", DATASET_ID, n=3)
    return ["predict", "-m", "stock", "-i", str(src / "imagesTr"), "-o", str(tmp / "out"), "-d", str(DATASET_ID),
            "-c", "3d_fullres", "-tr", "nnUNetTrainer", "-p", PLANS, "-f", "0", "-device", "cpu", "-npp", "0",
            "-nps", "0", "--save_probabilities"]


def test_predict_resume_redoes_what_does_not_check_out(untrained_model, tmp_path, monkeypatch, capsys):
    argv = _predict_argv(untrained_model, tmp_path, monkeypatch)
    out = tmp_path / "out"
    assert main(argv) == 0
    seg0 = read_image(out / "c0.nii.gz")[0]
    kept = (out / "c2.nii.gz").stat().st_mtime_ns
    (out / "c0.nii.gz").write_bytes(b"")                                 # a full disk's 0-byte segmentation
    data = (out / "c1.npz").read_bytes()
    (out / "c1.npz").write_bytes(data[: len(data) // 2])                 # a cut archive
    capsys.readouterr()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "c0: redoing the case (c0.nii.gz: 0 bytes written)" in text, text
    assert "c1: redoing the case (c1.npz: cannot be read back" in text, text
    assert "1 of 3 cases already predicted" in text
    assert np.array_equal(read_image(out / "c0.nii.gz")[0], seg0)
    assert (out / "c2.nii.gz").stat().st_mtime_ns == kept
    np.load(out / "c1.npz")["probabilities"]


def test_predict_on_a_full_disk_writes_no_record(untrained_model, tmp_path, monkeypatch, capsys):
    """Disk full while writing the first case: exit 2, one line, and no settings record claiming a finished run."""
    argv = _predict_argv(untrained_model, tmp_path, monkeypatch)
    out = tmp_path / "out"
    monkeypatch.setattr(*disk_full("short", after=2))  # the maps and the npz go through, the pkl is cut
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "disk full while writing" in err and "c0" in err, err
    left = sorted(p.name for p in out.iterdir())
    assert not [n for n in left if n.startswith(".tmp-") or n.endswith("settings.json") or n == "plans.json"], left
    monkeypatch.undo()
    monkeypatch.setenv("nnUNet_results", str(untrained_model))
    assert main(argv) == 0
    assert "no settings record" in capsys.readouterr().out  # the two files left of c0 are not trusted
    assert json.loads((out / "predict_settings.json").read_text())


def test_postprocess_resume_recomputes_a_cut_output(tmp_path, monkeypatch, capsys):
    from test_bad_input_core import _cmd_postprocess

    argv = _cmd_postprocess(tmp_path, monkeypatch, "disk_full").argv
    out = Path(argv[argv.index("-o") + 1])
    assert main(argv) == 0
    first = sorted(out.glob("*.nii.gz"))[0]
    expected = read_image(first)[0]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"{first.name[:-7]}: recomputing ({first.name}: read back: truncated" in text, text
    assert np.array_equal(read_image(first)[0], expected)


def test_nsclc_resume_converts_a_cut_case_again(tmp_path, monkeypatch, capsys):
    """Disk full at the second patient: the first stays in the resume folder; cut there, it is converted again."""
    from test_bad_input_datasets import _cmd_convert_nsclc

    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    argv = _cmd_convert_nsclc(tmp_path, monkeypatch, "disk_full").argv
    with monkeypatch.context() as m:
        m.setattr(*disk_full("short", after=4))  # log, image + label of LUNG1-001, log; LUNG1-002's image is cut
        assert main(argv) == 2
    resume = tmp_path / "raw" / ".nnext-resume-Dataset904_NSCLCRadiomics"
    label = resume / "labelsTr" / "LUNG1-001.nii.gz"
    assert label.is_file() and not (resume / "imagesTr" / "LUNG1-002_0000.nii.gz").exists()
    label.write_bytes(b"")
    capsys.readouterr()
    assert main(argv) == 0
    assert "LUNG1-001: converting again (LUNG1-001.nii.gz: 0 bytes written)" in capsys.readouterr().out
    final = tmp_path / "raw" / "Dataset904_NSCLCRadiomics"
    assert read_image(final / "labelsTr" / "LUNG1-001.nii.gz")[0].sum() > 0
