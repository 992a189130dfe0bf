"""Uncertainty-kernel search (nnunet_ext.methods.glioma.kernels) against a brute-force reference, and ``nnext \
kernels``."""
import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_ext.methods.glioma.kernels import (
    Kernel,
    kernel_size_voxels,
    search_kernels,
    search_kernels_bruteforce,
    window_sums,
)


def test_window_sums_equal_direct_sums():
    rng = np.random.default_rng(0)
    u = rng.random((7, 9, 11))
    size = (3, 4, 2)
    got = window_sums(u, size)
    assert got.shape == (5, 6, 10)
    for st in [(0, 0, 0), (4, 5, 9), (2, 3, 7), (1, 0, 5)]:
        assert got[st] == pytest.approx(u[st[0]:st[0] + 3, st[1]:st[1] + 4, st[2]:st[2] + 2].sum(), abs=1e-12)


def _as_tuples(ks):
    return [(k.start, k.size, round(k.sum, 9)) for k in ks]


@pytest.mark.parametrize("seed", range(6))
def test_search_equals_bruteforce_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(6, 14, size=3))
    u = rng.random(shape) ** 3  # skewed like an entropy map
    size = tuple(int(v) for v in rng.integers(2, 6, size=3))
    for overlap, kwargs in [(0.4, {}), (0.1, {"min_fraction": 0.3}), (0.7, {"min_sum": 0.5 * u.sum() / 50}),
                            (0.4, {"max_kernels": 3}), (0.0, {"min_fraction": 0.0})]:
        fast = search_kernels(u, size, overlap, **kwargs)
        slow = search_kernels_bruteforce(u, size, overlap, **kwargs)
        assert _as_tuples(fast) == _as_tuples(slow)
        assert len(fast) >= 1
        if "max_kernels" in kwargs:
            assert len(fast) == 3


def test_ties_and_exact_sums_on_integer_maps():
    # many exact ties: both implementations must break them the same way (smaller flat index first)
    rng = np.random.default_rng(3)
    u = rng.integers(0, 3, size=(8, 8, 8)).astype(np.float32)
    for overlap in (0.0, 0.25, 0.4, 0.9):
        assert _as_tuples(search_kernels(u, (3, 3, 3), overlap, min_fraction=0.0)) == \
            _as_tuples(search_kernels_bruteforce(u, (3, 3, 3), overlap, min_fraction=0.0))


def test_overlap_rule_and_thresholds_by_hand():
    u = np.zeros((1, 1, 20))
    u[0, 0, 5:9] = 1.0    # block A: sum 4 in a window of 4
    u[0, 0, 9:11] = 0.9   # next to it
    u[0, 0, 15:19] = 0.5  # block B: sum 2
    ks = search_kernels(u, (1, 1, 4), overlap=0.4)
    # first: x 5..8 (sum 4); x 7..10 overlaps 2/4 = 50 % > 40 % -> rejected; x 8..11 overlaps 1/4 -> kept
    assert ks[0] == Kernel((0, 0, 5), (1, 1, 4), 4.0)
    assert ks[1].start == (0, 0, 8) and ks[1].sum == pytest.approx(2.8)
    assert [k.start for k in ks] == [(0, 0, 5), (0, 0, 8), (0, 0, 15), (0, 0, 2), (0, 0, 12)]
    # threshold: fraction of the first (4 * 0.6 = 2.4) or absolute
    assert [k.start for k in search_kernels(u, (1, 1, 4), 0.4, min_fraction=0.6)] == [(0, 0, 5), (0, 0, 8)]
    assert [k.start for k in search_kernels(u, (1, 1, 4), 0.4, min_sum=1.9)] == [(0, 0, 5), (0, 0, 8), (0, 0, 15)]
    assert search_kernels(np.zeros((4, 4, 4)), (2, 2, 2)) == []   # nothing uncertain -> no kernel
    # pairwise overlap of the selection never exceeds the limit
    rng = np.random.default_rng(1)
    ks = search_kernels(rng.random((12, 12, 12)), (4, 4, 4), overlap=0.4, min_fraction=0.0)
    for i, a in enumerate(ks):
        for b in ks[:i]:
            ov = np.prod([max(0, 4 - abs(p - q)) for p, q in zip(a.start, b.start)])
            assert ov <= 0.4 * 64


def test_mm_to_voxels_and_clipping():
    assert kernel_size_voxels(32, (1.0, 1.0, 1.0)) == (32, 32, 32)
    assert kernel_size_voxels(32, (3.5, 3.0, 1.5)) == (9, 11, 21)
    assert kernel_size_voxels(1, (3.0, 3.0, 3.0)) == (1, 1, 1)
    u = np.random.default_rng(0).random((5, 30, 30))
    with pytest.warns(UserWarning, match="clipped"):
        ks = search_kernels(u, (11, 11, 11), max_kernels=1)
    assert ks[0].size == (5, 11, 11) and ks[0].start[0] == 0


def _write(u, path, spacing=(1.5, 1.0, 2.0)):
    img = sitk.GetImageFromArray(u.astype(np.float32))
    img.SetSpacing(spacing)  # x, y, z
    img.SetDirection((0, 1, 0, 1, 0, 0, 0, 0, 1))
    sitk.WriteImage(img, str(path))


def test_cli_writes_kernels_in_numpy_order(tmp_path):
    rng = np.random.default_rng(5)
    u = rng.random((10, 20, 16)) ** 4
    _write(u, tmp_path / "unc.nii.gz")
    out = tmp_path / "k.json"
    cmd = [sys.executable, "-m", "nnunet_ext.cli.main", "kernels", "-u", str(tmp_path / "unc.nii.gz"), "-o",
           str(out), "--kernel-mm", "8", "--overlap", "0.4", "--min-fraction", "0.5", "--max-kernels", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    # spacing (x, y, z) = (1.5, 1.0, 2.0) -> voxels (z, y, x) = (4, 8, 5)
    want = search_kernels(u.astype(np.float32), (4, 8, 5), 0.4, min_fraction=0.5, max_kernels=4)
    assert got == [k.to_json() for k in want] and 1 <= len(got) <= 4
    # existing output kept without --overwrite; bad inputs give one line and exit 2
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr
    bad = subprocess.run(cmd[:5] + [str(tmp_path / "missing.nii.gz")] + cmd[6:] + ["--overwrite"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.nii.gz" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    both = subprocess.run(cmd + ["--min-sum", "1", "--overwrite"], capture_output=True, text=True)
    assert both.returncode == 2


def test_kernel_mm_has_one_meaning_in_every_command():
    """``--kernel-mm`` is parsed by one function everywhere: D or TAG=D,... in mm; nnext kernels (one map) takes
    one size, the region commands fall back to the paper's sizes for regions not given."""
    import pytest

    from nnunet_ext.methods.glioma.kernels import PAPER_KERNEL_MM, kernel_mm_for, parse_kernel_sizes

    assert parse_kernel_sizes("32") == {"*": 32.0}
    sizes = parse_kernel_sizes("wt=64,TC=16")
    assert sizes == {"WT": 64.0, "TC": 16.0}
    assert (kernel_mm_for(sizes, "TC"), kernel_mm_for(sizes, "ET")) == (16.0, PAPER_KERNEL_MM["ET"])
    for bad, message in [("0", "> 0 mm"), ("WT=x", "expected D or TAG=D"), ("nan", "'nan' is not a finite")]:
        with pytest.raises(ValueError, match=message):
            parse_kernel_sizes(bad)


def test_nnext_kernels_refuses_per_region_sizes(tmp_path, capsys):
    import numpy as np

    from nnunet_ext.cli.main import main
    from nnunet_ext.io.imageio import Geometry, write_image

    u = tmp_path / "u.nii.gz"
    write_image(np.random.default_rng(0).random((8, 8, 8)).astype(np.float32), Geometry((1.0, 1.0, 1.0), (0, 0, 0)), u)
    assert main(["kernels", "-u", str(u), "-o", str(tmp_path / "k.json"), "--kernel-mm", "WT=4,TC=2"]) == 2
    assert "nnext kernels searches one map: give one size D in mm" in capsys.readouterr().err
    assert main(["kernels", "-u", str(u), "-o", str(tmp_path / "k.json"), "--kernel-mm", "4"]) == 0
