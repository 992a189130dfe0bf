"""The stale-output guard (``nnunet_ext.io.settings_record``): reuse, refuse naming the settings, overwrite."""
from __future__ import annotations

import json

import pytest

from nnunet_ext.errors import InputError
from nnunet_ext.io import settings_record as S


def test_settings_guard(tmp_path):
    s = {"method": "tta_mc", "n": 10, "config": {"top_k": None, "overlap": 0.8}}
    assert S.check_settings(tmp_path, s) is False          # no record yet
    S.record_settings(tmp_path, s, command="nnext x")
    assert S.check_settings(tmp_path, {**s}) is True       # same settings: reuse
    other = {**s, "n": 4, "config": {"top_k": 1, "overlap": 0.8}}
    with pytest.raises(InputError, match=r'other settings \(config\.top_k: null -> 1; n: 10 -> 4\); pass --overwrite'):
        S.check_settings(tmp_path, other)
    assert S.check_settings(tmp_path, other, overwrite=True) is False
    assert S.differing_settings(tmp_path, other) == ["config.top_k", "n"]
    assert S.differing_settings(tmp_path / "none", other) is None
    assert json.loads((tmp_path / S.SETTINGS_FILE).read_text())["command"] == "nnext x"
