"""What a prediction method of ``nnext predict -m NAME`` is: a class with its own options, maps and case step.

A method module defines one subclass of :class:`Method` (or :class:`ModelMethod` for methods that run one
nnU-Net model through :class:`~nnunet_ext.predictors.engine.SlidingWindowEngine`) and the registry
(:mod:`nnunet_ext.predictors.registry`) names it in one line. The shared case loop
(:mod:`nnunet_ext.predictors.loop`) does listing, validation, parts, resume, settings, seeds, progress and
writing; the method only turns one case into a :class:`CaseResult`:

* ``add_arguments(group)``: its own options and defaults (shown by ``nnext predict -m NAME -h``);
* ``from_args(args, common, model=None)``: validate them (raise :class:`~nnunet_ext.errors.InputError`), build and
  load; ``model`` is a :class:`~nnunet_ext.predictors.inputs.ModelSpec` when a composite method builds it as a
  stage (otherwise ``-d -c -tr -p -f``);
* ``prepare(case)`` (thread-safe CPU work: reading and preprocessing, run ahead with ``-npp``) and
  ``predict_case(prepared, ctx)``.

Composite methods (cascade, kernel refinement, interactive) build their stages with :func:`build_stage` from
registry names.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.io.imageio import Geometry
from nnunet_ext.predictors.inputs import Case, ModelSpec


@dataclass(frozen=True)
class CommonOptions:
    """Engine options every method shares (``nnext predict``'s common flags)."""

    device: str = "cpu"
    step_size: float = 0.5
    checkpoint: str = "checkpoint_final.pth"
    accumulator_dtype: str = "float32"
    calibration: bool = True
    progress: bool = True
    nan_policy: str = "refuse"

    def __post_init__(self):
        if not 0 < self.step_size <= 1:
            raise InputError(f"-step_size must be in (0, 1], got {self.step_size}")
        if self.accumulator_dtype not in ("float16", "float32"):
            raise InputError(f"--accumulator-dtype must be float16 or float32, got {self.accumulator_dtype!r}")
        if self.nan_policy not in ("refuse", "zero"):
            raise InputError(f"--nan-policy must be refuse or zero, got {self.nan_policy!r}")


def case_seed(seed: int, case_id: str) -> int:
    """Per-case seed: results do not depend on the order, on -num_parts / -part_id or on skipped cases."""
    return (int(seed) * 1_000_003 + zlib.crc32(case_id.encode())) % (2 ** 63)


@dataclass
class CaseContext:
    """Per-case state handed to every hook: seed, the sampling generator, a log (written as ``CASE_log`` into
    the settings of the case when non-empty) and ``extras`` for method-specific inputs already mapped into the
    preprocessed grid (clicks, projection origins, masks)."""

    case_id: str
    seed: int
    generator: Any = None
    log: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    @classmethod
    def for_case(cls, case_id: str, seed: int) -> "CaseContext":
        import torch

        s = case_seed(seed, case_id)
        torch.manual_seed(s)  # dropout masks come from torch's global generator
        return cls(case_id, s, torch.Generator().manual_seed(s))


@dataclass
class CaseResult:
    """One case in the input's (z, y, x) grid (2D inputs as (y, x)): what the case loop writes.

    ``probabilities`` ``(K, *spatial)`` (None when the method has none); ``maps`` by name; ``images``: side
    outputs ``CASE_<suffix>``; ``jsons``: ``CASE_<suffix>.json``; ``properties``: nnU-Net's reader properties
    (for the ``.pkl`` of ``--save_probabilities``); ``votes``: ``{label: vote count map}`` of ``n_members``
    passes / members (multi-pass methods; the pooled pairwise Dice of ``confidence.csv``).
    """

    geometry: Geometry
    segmentation: np.ndarray
    probabilities: "np.ndarray | None" = None
    maps: dict = field(default_factory=dict)
    images: dict = field(default_factory=dict)
    jsons: dict = field(default_factory=dict)
    properties: "dict | None" = None
    votes: "dict | None" = None
    n_members: int = 1


class Method:
    """Base of every method (module docstring)."""

    name: str = ""
    #: maps this method can write (``--uncertainty`` / ``--all-maps``)
    map_names: tuple[str, ...] = ()
    default_uncertainty: "str | None" = None
    #: whether the common model flags ``-d -c -tr -p -f`` apply
    takes_model: bool = True
    #: registry names of stage methods whose options this (composite) method also takes
    stage_methods: tuple[str, ...] = ()
    #: defaults this method sets for options it shares with its stages
    option_defaults: dict = {}
    #: maps the case loop will write (set by ``nnext predict`` from --uncertainty / --all-maps)
    requested_maps: tuple[str, ...] = ()

    def side_outputs(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Suffixes of the side images and JSONs every case gets with the chosen options."""
        return (), ()

    @classmethod
    def add_arguments(cls, group) -> None:
        """Add this method's own options to an argparse group."""

    @classmethod
    def from_args(cls, args, common: CommonOptions, model: "ModelSpec | None" = None) -> "Method":
        raise NotImplementedError

    @property
    def dataset_json(self) -> dict:
        raise NotImplementedError

    def check_cases(self, cases: list) -> None:
        """Refuse (InputError) options that do not fit the input cases, before anything is written; default: none."""

    def prepare(self, case: Case):
        """CPU work that can run ahead of the device (reading, preprocessing); default: nothing."""
        return case

    def predict_case(self, prepared, ctx: CaseContext) -> CaseResult:
        raise NotImplementedError

    def settings(self) -> dict:
        """What predict_settings.json records about this method (models, folds, options)."""
        return {}


def build_stage(name: str, args, common: CommonOptions, model: "ModelSpec | None" = None) -> Method:
    """Build registered method ``name`` as a stage of a composite method."""
    from nnunet_ext.predictors.registry import load_method

    return load_method(name).from_args(args, common, model)
