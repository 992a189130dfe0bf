"""The one case loop of ``nnext predict``, for every method.

``cases[part_id::num_parts]`` are predicted into ``out``. A case is skipped (nnU-Net's ``--continue_prediction``
is this behaviour) unless ``overwrite`` only when it checks out (:func:`stale_reason`): the folder's settings record
exists and matches, and every output file (:meth:`OutputSpec.files`) exists, is non-empty, complete (gzip stream)
and readable (header; JSON parsed, archives' CRCs), and the segmentation lies on its input's grid; otherwise the
case is redone with a one-line note. The folder records the settings that produced it (``.nnext_settings.json``);
a re-run with other output-defining settings is refused unless ``--overwrite`` (stale-output guard). Nothing is
written before the first case to predict has been read and validated. Every file is written atomically and
verified (:mod:`nnunet_ext.io.atomic_write`), the segmentation last; the settings record, ``predict_settings.json``,
``dataset.json`` and ``plans.json`` only once the first case's outputs are all written and verified.

``-npp N``: N background threads read and preprocess the next cases while the device predicts; ``-nps N``: N
threads write finished cases. Each case is seeded from ``(seed, case id)`` only, so the results are identical to
the sequential loop (``-npp 0 -nps 0``).

When maps are written (``OutputSpec.uncertainty``) the folder also gets ``confidence.csv``: a confidence per case,
structure and predicted connected component (:mod:`nnunet_ext.predictors.confidence_table`, issue 23).
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnunet_ext.errors import InputError
from nnunet_ext.predictors.method import CaseContext, CaseResult, Method

#: settings that do not change what is written (excluded from the stale-output comparison)
VOLATILE = ("i", "o", "overwrite", "continue_prediction", "num_parts", "part_id", "npp", "nps", "device",
            "png", "debug", "progress", "allow_missing_clicks")


@dataclass(frozen=True)
class OutputSpec:
    """Which files a case gets: ``CASE_uncertainty`` (map ``uncertainty``), ``CASE_<map>`` for ``extra_maps``,
    probabilities (``CASE_probabilities`` NIfTI + nnU-Net's ``CASE.npz`` / ``CASE.pkl``), side images and JSONs.
    ``maps_dir``: folder for everything except what ``nnUNetv2_predict`` itself writes (segmentation, npz, pkl);
    None = the output folder."""

    uncertainty: "str | None" = None
    extra_maps: tuple[str, ...] = ()
    save_probabilities: bool = False
    images: tuple[str, ...] = ()
    jsons: tuple[str, ...] = ()
    maps_dir: "str | None" = None

    def side_stem(self, stem: str) -> str:
        return stem if self.maps_dir is None else os.path.join(self.maps_dir, os.path.basename(stem))

    def files(self, stem: str, ending: str) -> list[str]:
        side = self.side_stem(stem)
        paths = [f"{side}_{s}{ending}" for s in (("uncertainty",) if self.uncertainty else ()) + self.extra_maps]
        if self.save_probabilities:
            paths += [f"{side}_probabilities{ending}", f"{stem}.npz", f"{stem}.pkl"]
        paths += [f"{side}_{s}{ending}" for s in self.images] + [f"{side}_{s}.json" for s in self.jsons]
        return paths + [f"{stem}{ending}"]


def stale_reason(case, spec: OutputSpec, stem: str, ending: str) -> "str | None":
    """Why the outputs of ``case`` at ``stem`` cannot be kept by a resume (``None``: they can): a file missing,
    empty, incomplete or unreadable, or a segmentation on another grid than the case's first input image
    (:func:`nnunet_ext.io.resume.output_problem`)."""
    from nnunet_ext.io.resume import output_problem

    files = getattr(case, "files", ())
    seg = f"{stem}{ending}"
    for p in spec.files(stem, ending):
        problem = output_problem(p, like=files[0] if files and p == seg else None)
        if problem is not None:
            return problem
    return None


def write_result(result: CaseResult, spec: OutputSpec, stem: str, ending: str, table=None,
                 dataset_json: "dict | None" = None) -> None:
    """Write one case: maps, probabilities, side outputs, the segmentation (its presence marks it done), then
    its rows of ``confidence.csv`` when a ``table`` is given."""
    from nnunet_ext.io.atomic_write import save_npz, save_pickle
    from nnunet_ext.io.imageio import atomic_write_text, write_image, write_probabilities

    g = result.geometry
    side = spec.side_stem(stem)
    spatial = (lambda a: a[0] if len(g.spacing) == 2 and a.ndim == 3 else a)  # nnU-Net keeps 2D as (1, y, x)
    for suffix, name in (([("uncertainty", spec.uncertainty)] if spec.uncertainty else [])
                         + [(n, n) for n in spec.extra_maps]):
        write_image(spatial(np.asarray(result.maps[name], dtype=np.float32)), g, f"{side}_{suffix}{ending}")
    if spec.save_probabilities:
        if result.probabilities is None:
            raise InputError("this method produces no probabilities (--save_probabilities)")
        probs = np.asarray(result.probabilities, dtype=np.float32)
        write_probabilities(np.stack([spatial(p) for p in probs]), g, f"{side}_probabilities{ending}")
        save_npz(f"{stem}.npz", probabilities=probs)  # exactly nnUNetv2_predict's files (nnUNetv2_ensemble reads)
        save_pickle(result.properties or {}, f"{stem}.pkl")
    for suffix in spec.images:
        write_image(spatial(np.asarray(result.images[suffix])), g, f"{side}_{suffix}{ending}")
    for suffix in spec.jsons:
        atomic_write_text(f"{side}_{suffix}.json", json.dumps(result.jsons[suffix], indent=1, default=str) + "\n")
    write_image(spatial(np.asarray(result.segmentation).astype(np.uint8 if result.segmentation.max(initial=0) < 256
                                                                 else np.int16)), g, f"{stem}{ending}")
    if table is not None:
        from nnunet_ext.predictors.confidence_table import case_rows

        case = os.path.basename(stem)
        table.set_case(case, case_rows(case, result, spec.uncertainty, dataset_json))


def predict_cases(method: Method, cases: list, out: "str | os.PathLike", spec: OutputSpec, *,
                  overwrite: bool = False, num_parts: int = 1, part_id: int = 0, seed: int = 0,
                  settings: "dict | None" = None, npp: int = 0, nps: int = 0, progress: bool = True) -> list[str]:
    """Predict ``cases[part_id::num_parts]`` into ``out`` (module docstring); returns the ids predicted now."""
    from nnunet_ext.io.integrity import check_output_dir
    from nnunet_ext.io.settings_record import check_settings

    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise InputError(f"-part_id must be in [0, -num_parts), got {part_id} with -num_parts {num_parts}")
    if npp < 0 or nps < 0:
        raise InputError(f"-npp and -nps must be >= 0, got {npp} and {nps}")
    out = check_output_dir(out)
    if spec.maps_dir is not None:
        check_output_dir(spec.maps_dir, "maps folder (--maps-dir)")
    signature = {k: v for k, v in (settings or {}).items() if k not in VOLATILE}
    recorded = check_settings(out, signature, overwrite, what="prediction folder")
    ending = method.dataset_json["file_ending"]
    mine = cases[part_id::num_parts]
    todo = mine if overwrite else [c for c in mine if not _keep(c, spec, str(out / c.case_id), ending, recorded)]
    if len(todo) < len(mine):
        print(f"{len(mine) - len(todo)} of {len(mine)} cases already predicted in {out} (outputs checked; use "
              "--overwrite to redo)")
    table = _confidence_table(out, spec, mine, todo, ending, method.dataset_json)
    if not todo:
        return []
    prep_pool = ThreadPoolExecutor(npp) if npp else None
    write_pool = ThreadPoolExecutor(nps) if nps else None
    ahead = max(1, npp)
    futures = {}

    def prepared(i):
        if prep_pool is None:
            return method.prepare(todo[i])
        for j in range(i, min(len(todo), i + ahead + 1)):
            if j not in futures:
                futures[j] = prep_pool.submit(method.prepare, todo[j])
        return futures.pop(i).result()

    writes, done = [], []
    try:
        from tqdm import tqdm

        from nnunet_ext.predictors.empty_note import empty_prediction_note

        _check_headers(method, todo)  # every input's header, then the first case's voxels: before any write
        first = prepared(0)
        if spec.maps_dir is not None:
            os.makedirs(spec.maps_dir, exist_ok=True)
        bar = tqdm(total=len(todo), desc="cases", unit="case", disable=not progress)
        for i, case in enumerate(todo):
            item = first if i == 0 else prepared(i)
            ctx = CaseContext.for_case(case.case_id, seed)
            result = method.predict_case(item, ctx)
            note = empty_prediction_note(case.case_id, result.segmentation, method.dataset_json)
            if note:
                bar.write(note)
            stem = str(out / case.case_id)
            if write_pool is None or i == 0:  # the first case synchronously: the records follow its outputs
                write_result(result, spec, stem, ending, table, method.dataset_json)
            else:
                writes.append(write_pool.submit(write_result, result, spec, stem, ending, table,
                                                method.dataset_json))
            if i == 0:
                _write_records(out, signature, settings, method)
            done.append(case.case_id)
            bar.update()
        for w in writes:
            w.result()
        bar.close()
    finally:
        for pool in (prep_pool, write_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    return done


def _confidence_table(out: Path, spec: OutputSpec, mine: list, todo: list, ending: str, dataset_json: dict):
    """The folder's confidence table (None when no map is written); rows of skipped cases are kept, and
    recomputed from their files on disk when missing (module docstring of confidence_table)."""
    if spec.uncertainty is None:
        return None
    from nnunet_ext.predictors.confidence_table import ConfidenceTable, rows_from_files

    table = ConfidenceTable(out)
    redo = {c.case_id for c in todo}
    skipped = [c.case_id for c in mine if c.case_id not in redo]
    lacking = [c for c in skipped if c not in table.rows]
    for case in lacking:
        stem = str(out / case)
        table.set_case(case, rows_from_files(case, f"{stem}{ending}", f"{spec.side_stem(stem)}_uncertainty{ending}",
                                             spec.uncertainty, dataset_json))
    if lacking:
        print(f"confidence.csv: rows of {len(lacking)} already predicted case(s) recomputed from their files "
              f"(no vote counts: confidence from the uncertainty map)")
    return table


def _check_headers(method: Method, cases: list) -> None:
    """Header-level checks of every input file before anything is written: complete file (gzip stream), scalar
    2D / 3D image, plausible spacing, and a 3D image for a 3D model. Voxel-level checks (NaN / Inf, intensities)
    happen when a case is read (the first one before anything is written)."""
    from nnunet_ext.io.integrity import read_header_checked

    config = getattr(getattr(method, "engine", None), "configuration_manager", None)
    for case in cases:
        for f in getattr(case, "files", ()):
            shape, _ = read_header_checked(f, ndim=(2, 3))
            if config is not None and len(config.patch_size) == 3 and len(shape) != 3:
                raise InputError(f"{f}: a 2D image of size {shape[::-1]}, but the model is 3D (patch "
                                 f"{tuple(config.patch_size)}); use a 2d model or a 3D image")


def _keep(case, spec: OutputSpec, stem: str, ending: str, recorded: bool) -> bool:
    """Whether a resume may skip ``case``: outputs present and checked (:func:`stale_reason`) under a matching
    settings record; a one-line note when existing outputs are redone."""
    if not any(os.path.exists(p) for p in spec.files(stem, ending)):
        return False
    reason = stale_reason(case, spec, stem, ending) if recorded else "no settings record in the folder"
    if reason is not None:
        print(f"{case.case_id}: redoing the case ({reason})")
    return reason is None


def _write_records(out: Path, signature: dict, settings: "dict | None", method: Method) -> None:
    """The folder's settings record and nnU-Net-style records, written once the first case's outputs are verified."""
    from nnunet_ext.io.settings_record import record_settings

    record_settings(out, signature, command="nnext predict")
    if settings is not None:
        _write_json(out / "predict_settings.json", settings)
        _write_json(out / "dataset.json", method.dataset_json)
        plans = getattr(getattr(method, "engine", None), "plans_manager", None)
        if plans is not None:
            _write_json(out / "plans.json", plans.plans)


def _write_json(path: Path, obj) -> None:
    from nnunet_ext.io.imageio import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, default=str))
