"""benchmarks/bench_headneck_demo.py ``summary`` on hand-made clicks-eval tables: per-seed curves, drops, the
issue's per-seed targets, the arms paired per (seed, case) and the automatic branch against the plain baseline,
against values computed by hand (no demo runs here)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_headneck_demo.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_headneck_demo", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, arm: str, seed: int, dice: dict, name: str = "clicks_eval_stage3") -> None:
    """dice: {(case, class): [Dice after 0, 1, 2, 3 clicks]}."""
    res = root / arm / f"seed{seed}" / "headneck" / "results"
    (res / name).mkdir(parents=True, exist_ok=True)
    (res / "summary.json").write_text("{}")
    lines = ["case,step,class,clicks_total,clicks_class,dice,nsd,hd,hd95"]
    lines += [f"{case},{step},{cls},0,0,{v},0,0,0" for (case, cls), values in dice.items()
              for step, v in enumerate(values)]
    (res / name / "clicks_eval.csv").write_text("\n".join(lines) + "\n")


def test_summary_curves_targets_pairs_and_baseline(tmp_path, bench):
    a = {0: {("c0", "GTVp"): [0.80, 0.82, 0.84, 0.86], ("c0", "GTVn"): [0.5, 0.6, 0.55, 0.7],
             ("c1", "GTVp"): [0.90, 0.90, 0.90, 0.90], ("c1", "GTVn"): [1.0, 1.0, 1.0, 1.0]},
         1: {("c0", "GTVp"): [0.70, 0.71, 0.72, 0.73], ("c0", "GTVn"): [0.2, 0.3, 0.4, 0.5],
             ("c1", "GTVp"): [0.60, 0.61, 0.62, 0.63], ("c1", "GTVn"): [0.0, 0.0, 0.0, 0.0]}}
    b = {s: {k: [x + 0.01 * i for i, x in enumerate(v)] for k, v in d.items()} for s, d in a.items()}
    for s in a:
        _write(tmp_path, "A", s, a[s])
        _write(tmp_path, "B", s, b[s])
    _write(tmp_path, "A", 0, {k: [v[0] - 0.1] for k, v in a[0].items()}, "clicks_eval_base")  # seed 0 only
    (tmp_path / "A" / "seed2").mkdir()  # a run that has not finished: left out
    r = bench.summarise(tmp_path, ["A", "B"])
    seed0 = r["A"]["seeds"][0]
    assert seed0["GTVp"]["dice"] == [0.85, 0.86, 0.87, 0.88] and seed0["GTVp"]["gain3"] == pytest.approx(0.03)
    assert seed0["GTVn"]["drop"] and not seed0["GTVp"]["drop"]  # GTVn 0.8 -> 0.775 after the 2nd click
    assert set(r["A"]["seeds"]) == {0, 1}
    assert r["A"]["targets"] == {"GTVn+0.10": [0, 1], "GTVp+0.03": [0, 1], "no_drop": [1]}
    gains_p = [0.06, 0.0, 0.03, 0.03]  # (seed, case) pairs of GTVp
    assert r["A"]["pooled_gain3"]["GTVp"]["mean"] == pytest.approx(sum(gains_p) / 4)
    assert r["A"]["pooled_gain3"]["GTVp"]["n"] == 4
    # B = A + 0.01 per click: its 3-click gain is 0.03 higher in every pair, its 0-click Dice the same
    assert r["B"]["minus_A"]["GTVp"]["gain3"]["mean"] == pytest.approx(0.03)
    assert r["B"]["minus_A"]["GTVn"]["dice0"]["mean"] == pytest.approx(0.0)
    assert r["B"]["minus_A"]["seeds"] == [0, 1]
    # the baseline exists for seed 0: stage 3's automatic Dice is 0.1 above it in each of its cases
    assert r["A"]["automatic_stage3_minus_plain"]["GTVn"]["mean"] == pytest.approx(0.1)
    assert r["A"]["automatic_stage3_minus_plain"]["GTVn"]["n"] == 2
    assert r["A"]["automatic_plain_mean"]["GTVp"] == pytest.approx((0.7 + 0.8) / 2)
    assert "automatic_stage3_minus_plain" not in r["B"]
    assert "protocols" not in r["A"]
    # the protocols part: 0..5 clicks per model and protocol, pooled over (seed, case) pairs
    for seed, d in ((0, 0.0), (1, 0.1)):
        _write(tmp_path, "A", seed, {("c0", "GTVp"): [0.5 + d + 0.02 * i for i in range(6)],
                                     ("c0", "GTVn"): [1.0] * 6}, "protocols/stage3_autopet")
    p = bench.summarise(tmp_path, ["A"])["A"]["protocols"]
    assert list(p) == ["stage3 autopet"]
    assert p["stage3 autopet"]["GTVp"]["dice"] == pytest.approx([0.55, 0.57, 0.59, 0.61, 0.63, 0.65])
    assert p["stage3 autopet"]["GTVp"]["gains"][5]["mean"] == pytest.approx(0.1)
    assert p["stage3 autopet"]["GTVn"]["gains"][3]["mean"] == 0.0
    assert bench.seeds_arg("0-2,5") == [0, 1, 2, 5]
    assert bench.main(["summary", "-o", str(tmp_path), "--arms", "A", "B", "--json", str(tmp_path / "s.json")]) == 0
    assert json.loads((tmp_path / "s.json").read_text())["B"]["minus_A"]["seeds"] == [0, 1]
