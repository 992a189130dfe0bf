"""GPU measurement suite (issue 24): every GPU target of the project in one process, time-boxed, one table.

Networks of real size with random weights (untrained model folders saved by nnU-Net's trainer; timing does not
depend on the weights), seeded synthetic images of real size. Parts (documentation/explanation/gpu_suite.md):

(a) ``nnext predict -m stock`` vs ``nnUNetv2_predict`` (found next to ``sys.executable``), ResEnc-M-size 3d_fullres
    model, CT-size case (192 x 384 x 384): identical segmentation, wall ratio, peak GPU memory of each command;
(b) ``-m tta_mc`` N = 10 vs one stock pass (same network and volume, in-process sliding window);
(c) ``-m spherical`` (stride 8: the paper's 1024 origins on a 256 x 256 slice; origins in the brain) on a BraTS-size
    4 x 155 x 240 x 240 subject with nnU-Net's default 2d network (autocast, batched): seconds per subject;
(d) ``-m kernel_refine`` end to end on that subject (default 3d_fullres network on the kernels);
(e) the interactive session (3D click-prompt ResEnc M): set_image, one click tile-local vs full re-prediction;
(f) the spherical warp, 1024 origins batched vs one origin per call.

Each part runs under its own time budget (SIGALRM; a part that runs over is reported "timed out after X s" and the
suite goes on); the whole full-size run stays under 8 minutes on one H100. Prints one markdown table (device, part,
figure, target), writes it to OUT/table.md and writes OUT/results.json (versions, device, per part: figures, details,
seconds, peak GPU
memory from ``torch.cuda.max_memory_allocated``).

    PYTHONUNBUFFERED=1 python benchmarks/gpu_suite.py --out DIR          # CUDA; fails in one line without it
    python benchmarks/gpu_suite.py --smoke --out DIR [--size tiny]       # CPU, toy sizes (tiny: the test's)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class PartTimeout(BaseException):
    """Raised by SIGALRM in a part that outruns its budget (BaseException: ``nnext``'s error handler lets it pass)."""


def _alarm(signum, frame):
    raise PartTimeout()


def environment(device) -> dict:
    import importlib.metadata as md

    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "device": device.type, "cpu_count": os.cpu_count(), "load": [round(v, 2) for v in os.getloadavg()]}
    for pkg in ("nnunetv2", "dynamic_network_architectures"):
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = None
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(device_name=p.name, device_memory_bytes=int(p.total_memory),
                    multiprocessors=p.multi_processor_count)
    else:
        info["device_name"] = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return info


def run_part(key, fn, ctx, budget: float) -> dict:
    import torch
    from _suite_parts import TITLES

    cuda = ctx.device.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    ctx.progress.clear()
    row = {"part": key, "title": TITLES[key], "budget_s": budget}
    t = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, budget)
    try:
        row.update(fn(ctx), status="ok")
    except PartTimeout:
        row.update(status="timed out", figure=f"timed out after {time.perf_counter() - t:.0f} s",
                   details={"progress": dict(ctx.progress)})
    except Exception as e:  # noqa: BLE001 - one part failing must not stop the suite
        text = str(e).strip().splitlines()
        row.update(status="failed", figure=f"failed: {type(e).__name__}: {text[0][:200] if text else ''}",
                   details={"progress": dict(ctx.progress), "error": "\n".join(text)[-2000:]})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    row["seconds"] = round(time.perf_counter() - t, 2)
    row["peak_gpu_bytes"] = int(torch.cuda.max_memory_allocated()) if cuda else None
    row.setdefault("target", "")
    return row


def table(info: dict, rows: list[dict]) -> str:
    dev = info["device_name"] + (" -- CPU smoke, not GPU figures" if info["device"] == "cpu" else "")
    lines = ["| device | part | figure | target |", "| --- | --- | --- | --- |"]
    for r in rows:
        met = {True: " (met)", False: " (missed)"}.get(r.get("met"), "")
        lines.append(f"| {dev} | ({r['part']}) {r['title']} | {r['figure']} | {r['target']}{met} |")
    return "\n".join(lines)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="CPU at toy size (default size smoke)")
    p.add_argument("--size", choices=("full", "smoke", "tiny"), default=None,
                   help="sizes (default: full on CUDA, smoke with --smoke)")
    p.add_argument("--out", default="gpu_suite_out", help="folder for results.json (default gpu_suite_out)")
    p.add_argument("--work", default=None, help="scratch folder for models and images (default: a temp folder, "
                   "removed at the end; a given folder is kept and its models and images reused)")
    p.add_argument("--parts", default="abcdef", help="parts to run, e.g. ace (default abcdef)")
    p.add_argument("--total-budget", type=float, default=None,
                   help="seconds for the whole run incl. start-up (default 450 full, 290 smoke, 400 tiny); a part "
                        "gets min(its budget, what is left)")
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiply every time budget (a shared, loaded CPU: the smoke run's parts then need more)")
    a = p.parse_args(argv)
    if set(a.parts) - set("abcdef"):
        p.error(f"--parts: unknown part(s) {''.join(sorted(set(a.parts) - set('abcdef')))}; choose from abcdef")
    import torch

    if not a.smoke and not torch.cuda.is_available():
        print(f"gpu_suite.py: error: no CUDA device (torch {torch.__version__}, CUDA {torch.version.cuda}); "
              "use --smoke for the CPU run", file=sys.stderr)
        return 2
    size_name = a.size or ("smoke" if a.smoke else "full")
    device = torch.device("cpu" if a.smoke else "cuda")
    total = a.budget_scale * (a.total_budget or {"full": 450.0, "smoke": 290.0, "tiny": 400.0}[size_name])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="gpu_suite_"))
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(scratch / name)
    os.environ.setdefault("nnUNet_def_n_proc", "1")
    os.environ.setdefault("nnUNet_n_proc_DA", "0")
    from nnunet_ext._autoregister import register

    register()  # subprocesses find the extension trainers even without the .pth of an install
    from _suite_parts import PARTS, SIZES, TITLES, Ctx

    info = environment(device)
    info.update(size=size_name, argv=sys.argv[1:] if argv is None else list(argv), budget_scale=a.budget_scale)
    ctx = Ctx(device, SIZES[size_name], scratch)
    rows = []
    try:
        for key in sorted(set(a.parts)):
            left = total - (time.perf_counter() - T0)
            budget = min(a.budget_scale * SIZES[size_name]["budgets"][key], left)
            if budget < 1:
                rows.append({"part": key, "title": TITLES[key], "status": "skipped",
                             "figure": "skipped: the suite's time budget is spent", "target": ""})
                continue
            rows.append(run_part(key, PARTS[key], ctx, budget))
            print(f"({key}) {rows[-1]['figure']}  [{rows[-1]['seconds']:.0f} s]", flush=True)
    finally:
        if not a.work:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    if size_name != "full":  # the targets are for the full sizes on a GPU: not judged at toy size
        for r in rows:
            r["met"] = None
    info["total_s"] = round(time.perf_counter() - T0, 1)
    info["load_end"] = [round(v, 2) for v in os.getloadavg()]
    text = table(info, rows)
    print(text)
    result = {"environment": info, "parts": rows, "table": text}
    tmp = out / ".results.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, default=str) + "\n")
    tmp.rename(out / "results.json")
    (out / "table.md").write_text(text + "\n")
    print(f"{out / 'results.json'} ({info['total_s']:.0f} s in all)")
    return 0 if all(r["status"] == "ok" and _finite(r.get("value")) for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
