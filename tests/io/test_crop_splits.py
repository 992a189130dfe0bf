"""Crop datasets come with nnU-Net's splits_final.json grouped by source case (no case on both sides of a fold)."""
import json

import pytest

from nnunet_ext.io.splits import default_splits, grouped_splits, leaks


def _groups():
    # 7 source cases with 1..4 crops each (crop IDs as kernel-dataset names them)
    return {f"c{c}_k{k:04d}": f"c{c}" for c in range(7) for k in range(1 + c % 4)}


def test_grouped_splits_follow_nnunets_split_of_the_source_cases():
    groups = _groups()
    splits = grouped_splits(groups)
    src = default_splits(sorted(set(groups.values())))             # nnU-Net's own split of the 7 cases
    assert len(splits) == 5 and leaks(splits, groups) == []
    for k in range(5):
        assert {groups[i] for i in splits[k]["val"]} == set(src[k]["val"])
        assert sorted(splits[k]["train"] + splits[k]["val"]) == sorted(groups)
    # nnU-Net's split of the crops themselves mixes cases (what this module prevents)
    assert leaks(default_splits(list(groups)), groups)
    # a given source split is followed; a case in two validation parts is refused
    given = [{"train": [], "val": ["c0", "c1", "c2"]}, {"train": [], "val": ["c3", "c4", "c5", "c6"]}]
    two = grouped_splits(groups, given)
    assert len(two) == 2 and {groups[i] for i in two[0]["val"]} == {"c0", "c1", "c2"}
    with pytest.raises(ValueError, match="c2"):
        grouped_splits(groups, [{"val": ["c0", "c1", "c2"]}, {"val": ["c2", "c3", "c4", "c5", "c6"]}])
    with pytest.raises(ValueError, match=">= 2 source cases"):
        grouped_splits({"a_k0000": "a", "a_k0001": "a"})


def test_roi_dataset_split_is_what_nnunet_do_split_uses(chest_dataset, nnunet_dirs):
    """roi-dataset (shares write_crop with kernel-dataset) -> nnext plan -> nnU-Net's trainer.do_split per fold."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_ext.cli.main import main
    from nnunet_ext.planners.run import plan_and_preprocess

    assert main(["roi-dataset", "-d", "501", "-t", "688", "--margin", "2"]) == 0
    raw = next(nnunet_dirs["nnUNet_raw"].glob("Dataset688_*"))
    info = json.loads((raw / "roi_info.json").read_text())
    groups = {cid: c["case"] for cid, c in info["crops"].items()}
    assert len(groups) > len(set(groups.values())) >= 5           # several crops per case: a leak is possible
    pre = nnunet_dirs["nnUNet_preprocessed"] / raw.name
    pre.mkdir(parents=True, exist_ok=True)                           # a stale random split is replaced
    stale = default_splits(list(groups))                             # nnU-Net's split of the crops: it leaks
    assert leaks(stale, groups)
    (pre / "splits_final.json").write_text(json.dumps(stale))
    plans_id = plan_and_preprocess(688, "TinyPlanner", ["3d_fullres"], num_processes=1)
    assert json.loads((pre / "splits_final.json").read_text()) == json.loads((raw / "splits_final.json").read_text())
    plans = json.loads((pre / f"{plans_id}.json").read_text())
    plans["continue_training"] = False  # what nnU-Net's run_training adds before building the trainer
    dataset_json = json.loads((pre / "dataset.json").read_text())
    seen_val = []
    for fold in range(5):
        trainer = nnUNetTrainer(dict(plans), "3d_fullres", fold, dataset_json, device=torch.device("cpu"))
        tr_keys, val_keys = trainer.do_split()
        assert not {groups[k] for k in tr_keys} & {groups[k] for k in val_keys}, fold
        assert sorted(tr_keys + val_keys) == sorted(groups)
        seen_val += list(val_keys)
    assert sorted(seen_val) == sorted(groups)                       # every crop validated exactly once
