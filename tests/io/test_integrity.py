"""The input-integrity layer (``nnunet_ext.io.integrity``) function by function, with exact expectations."""
import gzip
import json
import warnings
import zipfile

import numpy as np
import pytest

from nnunet_ext.errors import InputError
from nnunet_ext.io import integrity as I
from nnunet_ext.io.imageio import Geometry, read_image, write_image

G = Geometry((0.7, 0.8, 2.5), (1.0, -2.0, 3.0))


def _img(tmp_path, name="a.nii.gz", arr=None, geometry=G):
    arr = np.random.default_rng(0).normal(0, 100, (6, 10, 12)).astype(np.float32) if arr is None else arr
    path = tmp_path / name
    write_image(arr, geometry, path)
    return path, arr


@pytest.mark.parametrize("fraction", [0.0001, 0.3, 0.6, 0.99, 0.9999])
def test_truncated_gzip_refused_at_any_length(tmp_path, fraction):
    path, _ = _img(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * fraction))])
    # SimpleITK itself reads most of these without an error (half-zero images): the reason for the check
    with pytest.raises(InputError, match=r"a\.nii\.gz: (truncated|corrupt|not a gzip)"):
        I.check_file_complete(path)
    with pytest.raises(InputError, match="truncated|corrupt|not a gzip"):
        read_image(path)


def test_complete_gzip_fast_path_and_full_check(tmp_path):
    path, arr = _img(tmp_path)
    I.check_gzip_complete(path)              # trailer ISIZE == header size
    I.check_gzip_complete(path, full=True)   # whole stream, CRC checked
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF                         # CRC of the trailer spoiled: only the full check sees it
    path.write_bytes(bytes(data))
    I.check_gzip_complete(path)
    with pytest.raises(InputError, match="corrupt gzip"):
        I.check_gzip_complete(path, full=True)
    with pytest.raises(InputError, match=r"corrupt gzip file \(CRC check failed"):  # float voxels: scanned for NaN
        read_image(path)


def test_gzip_with_another_size_trailer_falls_back_to_the_stream(tmp_path):
    """Two gzip members (legal gzip): ISIZE is the last member's, so the stream decides (complete -> accepted)."""
    path, arr = _img(tmp_path)
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    I.check_gzip_complete(path)
    assert np.array_equal(read_image(path)[0], arr)


def test_plain_nifti_truncated_and_empty(tmp_path):
    path, _ = _img(tmp_path, "a.nii")
    I.check_file_complete(path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(InputError, match=r"truncated image \(\d+ of the \d+ bytes"):
        I.check_file_complete(path)
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        I.check_file_complete(path)
    with pytest.raises(InputError, match="file not found"):
        I.check_file_complete(tmp_path / "nope.nii.gz")


@pytest.mark.parametrize("name", ["a.nii.gz", "a.nii", "a.mha", "a.nrrd"])
def test_nan_and_inf_counted_in_every_format(tmp_path, name):
    arr = np.zeros((4, 5, 6), np.float32)
    arr[0, 0, 0], arr[1, 1, 1], arr[2, 2, 2] = np.nan, np.inf, -np.inf
    path, _ = _img(tmp_path, name, arr)
    with pytest.raises(InputError, match=r"1 NaN and 2 infinite voxel"):
        read_image(path)
    with pytest.warns(I.NonFiniteWarning, match="1 NaN and 2 infinite"):
        out, _ = read_image(path, nan_policy="zero")
    assert np.all(np.isfinite(out)) and out[0, 0, 0] == 0 and out[1, 1, 1] == 0
    with pytest.raises(InputError, match="NaN"):  # a label never gets the zero policy
        read_image(path, kind="label", nan_policy="zero")
    if name.startswith("a.nii"):
        assert I.count_nonfinite_voxels(path) == (1, 2)


def test_values_by_kind():
    lab = np.array([0, 1, 2], np.float32)
    assert I.check_values(lab, "f", kind="label") is not None
    with pytest.raises(InputError, match=r"f: 1 non-integer voxel value\(s\) \(e.g. 0.5\)"):
        I.check_values(np.array([0, 0.5, 1]), "f", kind="label")
    with pytest.raises(InputError, match="negative mask value"):
        I.check_values(np.array([0, -1], np.int16), "f", kind="mask")
    with pytest.raises(InputError, match=r"1 voxel\(s\) with \|value\| > 1e\+07"):
        I.check_values(np.array([0, 3e38], np.float32), "f", kind="image")
    I.check_values(np.array([-1024, 3071], np.int16), "f", kind="image")
    with pytest.raises(InputError, match=r"2 voxel value\(s\) outside \[0, 1\]"):
        I.check_values(np.array([-0.1, 0.5, 1.2]), "f", kind="map", min_value=0, max_value=1)
    with pytest.raises(InputError, match="no voxels"):
        I.check_values(np.zeros((0, 3)), "f")


def test_dimension_and_spacing(tmp_path):
    path, _ = _img(tmp_path)
    assert I.read_image_checked(path, ndim=3)[0].shape == (6, 10, 12)
    with pytest.raises(InputError, match=r"a 3D image of size \(12, 10, 6\); expected 2D"):
        I.read_image_checked(path, ndim=2)
    shape, g = I.read_header_checked(path, ndim=(2, 3))
    assert shape == (6, 10, 12) and g.matches(G)
    tiny, _ = _img(tmp_path, "t.nii.gz", geometry=Geometry((0.05, 0.8, 2.5), (0.0, 0.0, 0.0)))
    with pytest.raises(InputError, match=r"implausible voxel spacing \(0.05, 0.8, 2.5\) mm"):
        I.read_header_checked(tiny)
    I.check_spacing((0.1, 100.0), "f")
    with pytest.raises(InputError):
        I.check_spacing((float("nan"), 1.0), "f")


def test_load_json_checked(tmp_path):
    p = tmp_path / "dataset.json"
    with pytest.raises(InputError, match="dataset.json: dataset.json not found"):
        I.load_json_checked(p)
    p.write_text('{\n  "labels": {"background": 0},\n  "file_ending": ".nii.gz",\n}\n')
    with pytest.raises(InputError, match=r"malformed dataset\.json \(line 4, column 1"):
        I.load_json_checked(p)
    p.write_text(json.dumps({"labels": {"a": 1}}))
    with pytest.raises(InputError, match=r"lacks required key\(s\) 'file_ending', 'channel_names'"):
        I.load_json_checked(p, ("labels", "file_ending", "channel_names"))
    with pytest.raises(InputError, match=r"'labels.b'"):
        I.load_json_checked(p, ("labels.a", "labels.b"))
    p.write_text("[1, 2]")
    with pytest.raises(InputError, match="must be a JSON object, got a JSON list"):
        I.load_json_checked(p, what="plans")
    p.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not a text"):
        I.load_json_checked(p)


def test_check_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    good = tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {"w": torch.zeros(3)}, "init_args": {}, "trainer_name": "T"}, good)
    assert I.check_checkpoint(good) is None
    assert I.check_checkpoint(good, load=True)["trainer_name"] == "T"
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(InputError, match=r"cut\.pth: not a readable PyTorch checkpoint .*truncated"):
        I.check_checkpoint(cut)
    other = tmp_path / "other.pth"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(InputError, match="not a PyTorch checkpoint"):
        I.check_checkpoint(other)
    foreign = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError,
                       match=r"not an nnU-Net checkpoint \(lacks network_weights, init_args, trainer_name\)"):
        I.check_checkpoint(foreign, load=True)
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(InputError, match="empty checkpoint"):
        I.check_checkpoint(tmp_path / "empty.pth")


def test_output_paths(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert I.check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing created
    with pytest.raises(InputError, match="file.txt: out is an existing file"):
        I.check_output_dir(f, "out")
    with pytest.raises(InputError, match=r"cannot create the output folder: .*file\.txt is a file"):
        I.check_output_dir(f / "sub")
    with pytest.raises(InputError, match="is an existing folder"):
        I.check_output_file(tmp_path)
    I.check_output_file(tmp_path / "x" / "summary.json")


def test_readers_warn_nothing_on_clean_files(tmp_path):
    path, arr = _img(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, g = read_image(path, kind="image", ndim=3)
    assert np.array_equal(out, arr) and g.matches(G)


def test_evaluate_absent_label_and_negative_uncertainty(tmp_path, capsys):
    from nnunet_ext.cli.main import main

    ref, pred = tmp_path / "ref", tmp_path / "pred"
    ref.mkdir(), pred.mkdir()
    lab = np.zeros((6, 10, 12), np.uint8)
    lab[2:4, 3:6, 3:6] = 1
    for case in ("a", "b"):
        write_image(lab, G, ref / f"{case}.nii.gz")
        write_image(lab, G, pred / f"{case}.nii.gz")
    lab2 = lab.copy()
    lab2[0, 0, 0] = 2
    write_image(lab2, G, ref / "b.nii.gz")
    write_image(lab2, G, pred / "b.nii.gz")
    out = tmp_path / "s.json"
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(out), "-q", "-l", "1", "99"]) == 2
    err = capsys.readouterr().err
    assert "label / region 99 is absent from every reference and every prediction" in err and not out.exists()
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(out), "-q", "-l", "1", "2"]) == 0
    summary = json.loads(out.read_text())
    assert summary["absent_cases"] == {"2": 1}
    assert [r["absent"] for r in summary["metric_per_case"]] == [["2"], []]
    assert "label 2 absent from reference and prediction in 1 of 2 case(s)" in capsys.readouterr().err
    unc = np.zeros(lab.shape, np.float32)
    unc[1, 1, 1] = -0.5
    for case in ("a", "b"):
        write_image(unc, G, pred / f"{case}_uncertainty.nii.gz")
    out.unlink()
    (tmp_path / "s.csv").unlink()
    assert main(["evaluate", "-ref", str(ref), "-pred", str(pred), "-o", str(out), "-q", "--uncertainty",
                 str(pred)]) == 2
    assert "a_uncertainty.nii.gz: 1 negative uncertainty value(s) (min -0.5)" in capsys.readouterr().err
    assert not out.exists()
