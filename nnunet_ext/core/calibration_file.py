"""``calibration.json``: a fitted temperature tied to one trained model, and its apply side for the predictor.

``nnext calibrate`` writes the file into the model folder ``$nnUNet_results/DatasetX/TR__P__C``. The predictor
calls :func:`load_calibration` with the model it loaded and, when a calibration exists, passes its final
probabilities through :meth:`Calibration.apply` (``nnext predict --no-calibration`` skips it) and records
:meth:`Calibration.settings` in its settings JSON. A file written for another model (trainer, plans identifier,
configuration or the content of ``plans.json`` differ) is refused with a one-line :class:`InputError`.

Pure json / hashlib / numpy (torch only through :func:`~nnunet_ext.core.temperature.apply_temperature`).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np

from nnunet_ext.core.temperature import apply_temperature
from nnunet_ext.errors import InputError

__all__ = ["CALIBRATION_FILE", "CALIBRATION_FORMAT", "Calibration", "load_calibration", "plans_sha256",
           "model_identity"]

CALIBRATION_FILE = "calibration.json"
CALIBRATION_FORMAT = "nnext-calibration/1"


def plans_sha256(plans_file: str | os.PathLike) -> str:
    """SHA-256 of ``plans.json``'s content as canonical JSON (sorted keys, no whitespace), so re-saving the same
    plans with other formatting keeps the hash."""
    try:
        with open(plans_file, encoding="utf-8") as f:
            plans = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{plans_file}: cannot read plans ({type(e).__name__}: {e})") from None
    text = json.dumps(plans, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_identity(model_folder: str | os.PathLike, plans_identifier: str, trainer: str, configuration: str) -> dict:
    """The ``"model"`` block of ``calibration.json`` for ``model_folder`` (which must hold ``plans.json``)."""
    plans = os.path.join(os.fspath(model_folder), "plans.json")
    if not os.path.isfile(plans):
        raise InputError(f"{plans}: not found; is {model_folder} an nnU-Net model folder (TR__P__C)?")
    return {"trainer": trainer, "plans_identifier": plans_identifier, "configuration": configuration,
            "plans_sha256": plans_sha256(plans), "folder": os.path.abspath(model_folder)}


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature: ``temperature`` (C,) float64 (a shared T repeated), softmax or sigmoid outputs."""

    temperature: np.ndarray
    sigmoid: bool
    per_class: bool
    path: str
    data: dict

    def apply(self, probabilities, sigmoid: bool | None = None):
        """Calibrated probabilities ``(C, *S)`` (numpy or torch, same type and dtype): ``p ** (1/T)`` renormalised
        (softmax) or ``sigmoid(logit(p) / T)`` (regions). ``sigmoid`` (the model's nonlinearity), when given, must
        match the file's; the channel count must match the fitted one."""
        if sigmoid is not None and bool(sigmoid) != self.sigmoid:
            raise InputError(f"{self.path}: fitted on {'sigmoid' if self.sigmoid else 'softmax'} outputs, but the "
                             f"model predicts {'sigmoid (regions)' if sigmoid else 'softmax'} outputs")
        if probabilities.shape[0] != self.temperature.size:
            raise InputError(f"{self.path}: fitted for {self.temperature.size} channels, the probabilities have "
                             f"{probabilities.shape[0]}")
        return apply_temperature(probabilities, self.temperature, sigmoid=self.sigmoid)

    def settings(self) -> dict:
        """What the predictor records in its settings JSON."""
        return {"file": self.path, "temperature": self.data["temperature"], "per_class": self.per_class,
                "nonlinearity": "sigmoid" if self.sigmoid else "softmax",
                "plans_sha256": self.data["model"]["plans_sha256"]}


def _parse(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read the calibration file ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise InputError(f"{path}: not an nnext calibration file (expected format {CALIBRATION_FORMAT!r})")
    return data


def load_calibration(model_folder: str | os.PathLike, plans_identifier: str, trainer: str,
                     configuration: str) -> Calibration | None:
    """The calibration in ``model_folder/calibration.json`` or None if there is none.

    Raises :class:`InputError` (one line) when the file is unreadable or was written for another model: its
    trainer, plans identifier, configuration or plans hash differ from the given model's (``plans.json`` in
    ``model_folder``), or it was fitted on a folder of probabilities without naming a model.
    """
    path = os.path.join(os.fspath(model_folder), CALIBRATION_FILE)
    if not os.path.isfile(path):
        return None
    data = _parse(path)
    model = data.get("model")
    if not isinstance(model, dict):
        raise InputError(f"{path}: written without a model (nnext calibrate --probabilities without -d/-tr/-p/-c); "
                         "re-run nnext calibrate for this model or pass --no-calibration")
    want = model_identity(model_folder, plans_identifier, trainer, configuration)
    for key, what in (("trainer", "trainer"), ("plans_identifier", "plans"), ("configuration", "configuration"),
                      ("plans_sha256", "plans.json content (hash)")):
        if model.get(key) != want[key]:
            raise InputError(f"{path}: written for another model ({what} {model.get(key)!r}, this model has "
                             f"{want[key]!r}); re-run nnext calibrate or pass --no-calibration")
    t = np.asarray(data.get("temperature"), dtype=np.float64).reshape(-1)
    n_ch = int(data.get("n_channels", t.size))
    if t.size == 1:
        t = np.full(n_ch, float(t[0]))
    if t.size != n_ch or not np.all(np.isfinite(t) & (t > 0)):
        raise InputError(f"{path}: temperature must be positive, one value or one per channel ({n_ch})")
    return Calibration(t, data.get("nonlinearity") == "sigmoid", bool(data.get("per_class")), path, data)
