"""The six parts of benchmarks/gpu_suite.py (its docstring says what each measures and why).

Each part takes the suite's :class:`Ctx` and returns a dict: ``value`` (the headline number), ``unit``, ``figure``
(one line for the table), ``target``, ``met`` (bool, None without a target) and ``details``. Parts that run a
command (part a) run it as a subprocess through :data:`WRAP`, which records the command's own peak GPU memory;
the others run in the suite's process (``nnext`` through its ``main``, ``-npp 0 -nps 0``: no background threads).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import _models as M
import _suite_data as D
import torch

SIZES = {  # full: the sizes (one H100); smoke: CPU in minutes; tiny: the test's, seconds
    "full": {"ct_arch": "resenc_m", "ct_shape": (192, 384, 384), "tta_n": 10, "brain_shape": (155, 240, 240),
             "arch2d": "default_2d", "arch3d": "default_3d", "stride": 8, "max_kernels": 8, "kernel_mm": None,
             "hn_shape": (160, 320, 320), "click_arch": "resenc_m", "warp_size": 256, "warp_origins": 1024,
             "repeats": 2, "workers": 1, "budgets": {"a": 130, "b": 70, "c": 100, "d": 90, "e": 40, "f": 20}},
    "smoke": {"ct_arch": "tiny", "ct_shape": (48, 96, 96), "tta_n": 10, "brain_shape": (24, 64, 64),
              "arch2d": "tiny_2d", "arch3d": "tiny", "stride": 8, "max_kernels": 2, "kernel_mm": "16",
              "hn_shape": (40, 96, 96), "click_arch": "tiny", "warp_size": 128, "warp_origins": 64,
              "repeats": 1, "workers": 0, "budgets": {"a": 150, "b": 60, "c": 60, "d": 60, "e": 60, "f": 30}},
    "tiny": {"ct_arch": "tiny", "ct_shape": (32, 64, 80), "tta_n": 10, "brain_shape": (6, 32, 32),
             "arch2d": "tiny_2d", "arch3d": "tiny", "stride": 8, "max_kernels": 1, "kernel_mm": "16",
             "hn_shape": (32, 64, 80), "click_arch": "tiny", "warp_size": 64, "warp_origins": 16,
             "repeats": 1, "workers": 0, "budgets": {"a": 200, "b": 60, "c": 60, "d": 60, "e": 60, "f": 30}},
}
ARCHS = {"resenc_m": M.resenc_m_arch, "tiny": M.tiny_arch, "default_2d": M.default_2d_arch,
         "default_3d": M.default_3d_arch, "tiny_2d": M.tiny_2d_arch}
TITLES = {"a": "stock vs nnUNetv2_predict", "b": "tta_mc N vs one stock pass", "c": "spherical ensemble",
          "d": "kernel_refine end to end", "e": "interactive session, 3D", "f": "spherical warp"}

#: runs a console script (path) or module under runpy and writes its peak GPU memory as JSON at exit
WRAP = r"""
import atexit, json, runpy, sys
out, kind, target = sys.argv[1:4]
sys.argv = [target] + sys.argv[4:]
def _peak():
    peak = None
    try:
        import torch
        if torch.cuda.is_initialized():
            peak = int(torch.cuda.max_memory_allocated())
    except Exception:
        pass
    with open(out, "w") as f:
        json.dump({"peak_bytes": peak}, f)
atexit.register(_peak)
if kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    runpy.run_path(target, run_name="__main__")
"""


@dataclass
class Ctx:
    device: torch.device
    size: dict
    work: Path
    progress: dict = field(default_factory=dict)  # what a part got done, reported if it is timed out

    @property
    def results(self) -> Path:
        return Path(os.environ["nnUNet_results"])

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def arch(self, key: str):
        return ARCHS[self.size[key]]()

    def fresh(self, name: str) -> Path:
        p = self.work / name
        shutil.rmtree(p, ignore_errors=True)
        return p

    def command(self, kind: str, target: str, argv) -> tuple[float, "int | None"]:
        """Run ``target`` (a script path or a module) as its own process; (wall seconds, peak GPU bytes). The
        process group is killed if the suite is interrupted (a part's time box) while it runs."""
        peak_file = self.work / f".peak_{os.getpid()}_{time.monotonic_ns()}.json"
        cmd = [sys.executable, "-c", WRAP, str(peak_file), kind, target, *map(str, argv)]
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            log, _ = proc.communicate()
        except BaseException:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise
        seconds = time.perf_counter() - t
        if proc.returncode:
            raise RuntimeError(f"{Path(target).name} exited {proc.returncode}: {log.strip()[-1500:]}")
        peak = json.loads(peak_file.read_text())["peak_bytes"] if peak_file.is_file() else None
        return seconds, peak

    def nnext(self, argv) -> float:
        """``nnext ARGV`` in this process; wall seconds (synchronised)."""
        from nnunet_ext.cli.main import main as nnext

        self.sync()
        t = time.perf_counter()
        code = nnext([str(a) for a in argv])
        self.sync()
        if code:
            raise RuntimeError(f"nnext {argv[0]} {' '.join(map(str, argv[1:3]))} exited {code}")
        return time.perf_counter() - t


def _gib(b) -> str:
    return "n/a" if b is None else f"{b / 2 ** 30:.1f} GiB"


def part_a(ctx: Ctx) -> dict:
    """``nnext predict -m stock`` vs ``nnUNetv2_predict``: same model, case, mirroring, one worker each."""
    from nnunet_ext.io.imageio import read_image
    from nnunet_ext.io.paths import nnunet_command

    D.ct_model(ctx.results, ctx.arch("ct_arch"))
    inp = D.ct_case(ctx.work / "ct_in", ctx.size["ct_shape"])
    for f in inp.iterdir():
        f.read_bytes()  # both commands find the case in the page cache
    model = ["-i", inp, "-d", D.CT_ID, "-c", "3d_fullres", "-tr", "nnUNetTrainer", "-p", D.PLANS, "-f", "0",
             "-device", ctx.device.type, "-npp", ctx.size["workers"], "-nps", ctx.size["workers"]]
    theirs, ours = ctx.fresh("a_nnunet"), ctx.fresh("a_nnext")
    t_nn, m_nn = ctx.command("path", nnunet_command("nnUNetv2_predict"),
                             [*model, "-o", theirs, "--disable_progress_bar"])
    ctx.progress["nnUNetv2_predict_s"] = round(t_nn, 2)
    t_ext, m_ext = ctx.command("module", "nnunet_ext.cli.main",
                               ["predict", "-m", "stock", *model, "-o", ours, "--accumulator-dtype", "float16"])
    a, _ = read_image(theirs / f"ct_000{D.ENDING}", kind="label")
    b, _ = read_image(ours / f"ct_000{D.ENDING}", kind="label")
    differ = int((a != b).sum()) if a.shape == b.shape else -1
    ratio = t_ext / t_nn
    return {"value": ratio, "unit": "x", "target": "<= 1.0x, identical segmentation",
            "met": ratio <= 1.0 and differ == 0,
            "figure": f"{t_ext:.1f} s / {t_nn:.1f} s = {ratio:.2f}x; identical: {differ == 0} ({differ} of {a.size} "
                      f"voxels differ); peak {_gib(m_ext)} / {_gib(m_nn)}",
            "details": {"nnext_s": t_ext, "nnUNetv2_predict_s": t_nn, "differing_voxels": differ,
                        "voxels": int(a.size), "identical": differ == 0, "image_zyx": list(ctx.size["ct_shape"]),
                        "network": ctx.size["ct_arch"], "peak_gpu_bytes_nnext": m_ext,
                        "peak_gpu_bytes_nnUNetv2_predict": m_nn,
                        "flags": f"mirroring on (nnU-Net's default), -npp / -nps {ctx.size['workers']}, nnext "
                                 "--accumulator-dtype float16"}}


def part_b(ctx: Ctx) -> dict:
    """``-m tta_mc`` with N passes (noise, flip, rotate; volume scope) vs one stock pass (no mirroring)."""
    from bench_tta_mc import time_tta_mc

    n = ctx.size["tta_n"]
    r = time_tta_mc(ctx.arch("ct_arch"), n, ctx.device, 1, ctx.size["ct_shape"], ("noise", "flip", "rotate"),
                    "volume", overheads=False)
    ratio = r[n] / r["stock"]
    return {"value": ratio, "unit": "x", "target": f"N = {n} <= 3x one pass", "met": ratio <= 3.0,
            "figure": f"N = {n}: {r[n]:.2f} s / one pass {r['stock']:.2f} s = {ratio:.2f}x ({r['windows']} windows)",
            "details": {"tta_mc_s": r[n], "stock_pass_s": r["stock"], "n_passes": n, "windows": r["windows"],
                        "image_zyx": list(ctx.size["ct_shape"]), "network": ctx.size["ct_arch"]}}


class _EnsembleClock:
    """Counts projections and seconds inside :func:`ensemble_slice` (the part's progress if it is timed out)."""

    def __init__(self, ctx: Ctx):
        import nnunet_ext.methods.glioma.spherical_ensemble as se

        self.ctx, self.se, self.orig = ctx, se, se.ensemble_slice
        ctx.progress.update(projections=0, slices=0, ensemble_s=0.0)

    def __enter__(self):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            res = self.orig(*args, **kwargs)
            self.ctx.sync()
            p = self.ctx.progress
            p["ensemble_s"] += time.perf_counter() - t
            p["projections"] += int(res.n_origins)
            p["slices"] += 1
            return res

        self.se.ensemble_slice = timed
        return self

    def __exit__(self, *exc):
        self.se.ensemble_slice = self.orig


def _brain(ctx: Ctx):
    m2, m3 = D.brain_models(ctx.results, ctx.arch("arch2d"), ctx.arch("arch3d"))
    return m2, m3, D.brain_case(ctx.work / "brain_in", ctx.size["brain_shape"])


def part_c(ctx: Ctx) -> dict:
    """``nnext predict -m spherical`` (stride 8 = the paper's grid, origins in the brain) on one subject."""
    m2, _, inp = _brain(ctx)
    out = ctx.fresh("c_spherical")
    d, c, tr, pl, f = m2.split(",")
    with _EnsembleClock(ctx):
        wall = ctx.nnext(["predict", "-m", "spherical", "-i", inp, "-o", out, "-d", d, "-c", c, "-tr", tr, "-p", pl,
                          "-f", f, "--stride", ctx.size["stride"], "-device", ctx.device.type, "-npp", 0, "-nps", 0])
    info = json.loads((out / "brain_000_spherical.json").read_text())
    p = ctx.progress
    pps = p["projections"] / max(p["ensemble_s"], 1e-9)
    z = ctx.size["brain_shape"][0]
    paper = z * 1024 / pps + (wall - p["ensemble_s"])  # the paper's 1024 origins on every slice, no ROI
    return {"value": wall, "unit": "s", "target": "< 60 s per subject", "met": wall < 60,
            "figure": f"{wall:.1f} s per subject ({info['n_origins']} projections, {pps:.0f} /s; 1024 on each of "
                      f"{z} slices: {paper:.0f} s)",
            "details": {"seconds_per_subject": wall, "projections": info["n_origins"], "ensemble_s": p["ensemble_s"],
                        "projections_per_s": pps, "extrapolated_1024_per_slice_s": paper,
                        "origins_per_slice_max": max(info["origins_per_slice"]), "stride": ctx.size["stride"],
                        "origin_batch": info.get("origin_batch"), "subject_czyx": [4, *ctx.size["brain_shape"]],
                        "network": ctx.size["arch2d"]}}


def part_d(ctx: Ctx) -> dict:
    """``nnext predict -m kernel_refine`` (spherical ensemble, kernel search, 3D model per kernel, fusion)."""
    m2, m3, inp = _brain(ctx)
    out = ctx.fresh("d_kernel_refine")
    extra = ["--kernel-mm", ctx.size["kernel_mm"]] if ctx.size["kernel_mm"] else []
    with _EnsembleClock(ctx):
        wall = ctx.nnext(["predict", "-m", "kernel_refine", "-i", inp, "-o", out, "--model2d", m2, "--model3d", m3,
                          "--stride", ctx.size["stride"], "--max-kernels", ctx.size["max_kernels"], "--disable_tta",
                          *extra, "-device", ctx.device.type, "-npp", 0, "-nps", 0])
    log = json.loads((out / "brain_000_kernels.json").read_text())
    n3 = int(log["n_3d_predictions"])
    ens = ctx.progress["ensemble_s"]
    return {"value": wall, "unit": "s", "target": "< 240 s per subject (paper: < 4 min on an L20)", "met": wall < 240,
            "figure": f"{wall:.1f} s per subject (spherical ensemble {ens:.1f} s, {n3} kernel predictions)",
            "details": {"seconds_per_subject": wall, "ensemble_s": ens, "n_3d_predictions": n3,
                        "max_kernels_per_region": ctx.size["max_kernels"], "kernel_mm": ctx.size["kernel_mm"] or
                        "paper (WT 64, TC 32, ET 32)", "networks": [ctx.size["arch2d"], ctx.size["arch3d"]]}}


def part_e(ctx: Ctx) -> dict:
    """InteractiveSession (3D click-prompt model): set_image, then one click: tile-local update vs full."""
    from bench_interactive import time_session

    from nnunet_ext.methods.interactive.session import InteractiveSession

    D.click_model(ctx.results, ctx.arch("click_arch"))
    shape = ctx.size["hn_shape"]
    images = D.hn_images(shape)
    s = InteractiveSession.from_model(D.HN_ID, "3d_fullres", trainer="ClickPromptTrainer", plans=D.PLANS,
                                      folds=(0,), device=ctx.device.type)
    click = (shape[2] // 2, shape[1] // 2, shape[0] // 2)  # voxel (x, y, z): the centre
    r = time_session(s, images, click, "GTVp", ctx.size["repeats"], ctx.sync)
    local = r["tile_local_s"]
    return {"value": local, "unit": "s", "target": "a click < 1 s (3D)", "met": local < 1.0,
            "figure": f"set_image {r['set_image_s']:.2f} s; click {local:.2f} s tile-local ({r['windows_recomputed']} "
                      f"of {r['windows']} windows) vs {r['full_s']:.2f} s full",
            "details": {**r, "image_czyx": [2, *shape], "network": ctx.size["click_arch"]}}


def part_f(ctx: Ctx) -> dict:
    """``forward_warp`` of 4 x S x S around K origins: batched (device default chunks) vs one origin per call."""
    from bench_spherical import time_warp

    size, k = ctx.size["warp_size"], ctx.size["warp_origins"]
    r = time_warp(ctx.device, k, size / 2, [None], ctx.size["repeats"] + 1, size)
    ratio = r["single"] / r["batched"][None]
    return {"value": ratio, "unit": "x", "target": ">= 10x (batched vs one origin)", "met": ratio >= 10,
            "figure": f"{k} origins on 4 x {size} x {size}: one per call {r['single']:.3f} s, batched "
                      f"{r['batched'][None]:.3f} s = {ratio:.1f}x",
            "details": {"single_s": r["single"], "batched_s": r["batched"][None], "origins": k, "size": size}}


PARTS = {"a": part_a, "b": part_b, "c": part_c, "d": part_d, "e": part_e, "f": part_f}
