"""benchmarks/gpu_suite.py at its smallest size on the CPU (issue 24): every part runs, the table has every part,
results.json is written and parsable, ``nnext predict -m stock`` equals ``nnUNetv2_predict`` voxel for voxel
(``--accumulator-dtype float16``: nnU-Net's arithmetic) and every figure is a finite number. No timing is asserted.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
from pathlib import Path

SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def _suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


def test_without_cuda_the_full_run_stops_in_one_line(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _suite().main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_suite.py: error: no CUDA device")
    assert not (tmp_path / "out").exists()


def test_gpu_suite_tiny_cpu(tmp_path, monkeypatch, capsys):
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_def_n_proc", "nnUNet_n_proc_DA",
                 "nnUNet_extTrainer"):  # the suite sets these: recorded here, restored after the test
        old = os.environ.get(name)
        monkeypatch.setenv(name, "unset" if old is None else old)
        if old is None:
            monkeypatch.delenv(name)
    suite = _suite()
    out = tmp_path / "out"
    # the time boxes guard a GPU run against hangs; on a loaded CI machine they are widened, not asserted
    code = suite.main(["--smoke", "--size", "tiny", "--budget-scale", "5", "--out", str(out), "--work",
                       str(tmp_path / "work")])
    printed = capsys.readouterr().out
    result = json.loads((out / "results.json").read_text())
    assert (out / "table.md").read_text().strip() == result["table"]
    parts = {r["part"]: r for r in result["parts"]}
    assert sorted(parts) == list("abcdef")
    bad = {k: r["figure"] for k, r in parts.items() if r["status"] != "ok"}
    assert not bad, bad
    assert code == 0
    table = printed[printed.index("| device | part | figure | target |"):]
    for key in "abcdef":  # one table row per part, on the CPU-smoke device
        assert re.search(rf"^\| CPU .*CPU smoke.* \| \({key}\) ", table, re.M), key
    assert result["environment"]["device"] == "cpu" and result["environment"]["torch"]
    a = parts["a"]["details"]
    assert a["identical"] is True and a["differing_voxels"] == 0 and a["voxels"] == 32 * 64 * 80
    for key, r in parts.items():
        assert isinstance(r["value"], (int, float)) and math.isfinite(r["value"]) and r["value"] > 0, key
        assert all(math.isfinite(v) for v in _numbers(r["details"])), key
        assert r["peak_gpu_bytes"] is None  # CPU: no GPU memory to report
    assert parts["c"]["details"]["projections"] > parts["c"]["details"]["origins_per_slice_max"] > 1
    assert parts["d"]["details"]["n_3d_predictions"] >= 1
    assert parts["e"]["details"]["windows_recomputed"] >= 1
