"""Numbered demo steps with the stale-settings guard every ``nnext demo`` kind shares.

A finished step is reused on a re-run only when its outputs exist and the settings it was made with (recorded in
``ROOT/.nnext_demo_<step>.json``) equal the current ones; otherwise it is redone and the changed settings are
named. A step's settings should include those of the steps before it (a new dataset invalidates the model).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

#: hidden per-step settings records in a demo's working folder
STEP_RECORD = ".nnext_demo_{}.json"


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class DemoSteps:
    """``steps = DemoSteps(root, total=6)``; ``t = steps.start("text")`` prints ``[i/total] text`` and returns a
    start time; ``steps.must_redo(name, settings, outputs_exist)``; ``steps.done(name, settings)``;
    ``steps.timings`` (wall) and ``steps.cpu`` (CPU seconds, which on a shared machine hardly depend on the load)
    collect ``steps.stop(name, t)``."""

    def __init__(self, root: Path, total: int, label: str = ""):
        self.root, self.total, self.label, self.i = Path(root), total, label, 0
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._cpu0 = cpu_seconds()

    def start(self, text: str) -> float:
        self.i += 1
        print(f"\n[{self.i}/{self.total}]{' ' + self.label if self.label else ''} {text}", flush=True)
        self._cpu0 = cpu_seconds()
        return time.perf_counter()

    def stop(self, name: str, t: float) -> float:
        self.cpu[f"{name}_s"] = round(cpu_seconds() - self._cpu0, 1)
        self.timings[f"{name}_s"] = round(time.perf_counter() - t, 1)
        return self.timings[f"{name}_s"]

    def must_redo(self, name: str, settings: dict, outputs_exist: bool, earlier_redone: bool = False) -> bool:
        """``not reusable(...)``, and always True after an earlier step was redone in this run (equal settings do
        not mean equal outputs then: a retrained model). On a redo the old settings record is dropped first, so
        that a redo failing half-way cannot leave a record that would make a later run reuse half-rewritten
        outputs."""
        if earlier_redone:
            print(f"redoing {name} (an earlier step was redone)")
        elif self.reusable(name, settings, outputs_exist):
            return False
        (self.root / STEP_RECORD.format(name)).unlink(missing_ok=True)
        return True

    def reusable(self, name: str, settings: dict, outputs_exist: bool) -> bool:
        """True when ``name``'s outputs exist and were made with ``settings``; else say why it is redone."""
        from nnunet_ext.io.settings_record import differing_settings

        if not outputs_exist:
            return False
        diff = differing_settings(self.root, settings, filename=STEP_RECORD.format(name))
        if diff == []:
            print(f"reusing {name} (same settings)")
            return True
        why = "no settings record" if diff is None else "settings changed: " + ", ".join(diff)
        print(f"redoing {name} ({why})")
        return False

    def done(self, name: str, settings: dict) -> None:
        from nnunet_ext.io.settings_record import record_settings

        record_settings(self.root, settings, filename=STEP_RECORD.format(name), command=f"nnext demo: {name}")


def made_by_demo(root: Path) -> bool:
    """A folder ``nnext demo`` may write into: absent, empty, or holding its step records / nnU-Net folders."""
    root = Path(root)
    return (not root.is_dir() or not any(root.iterdir()) or any(root.glob(STEP_RECORD.format("*")))
            or (root / "nnUNet_raw").is_dir())


def user_options(args) -> list:
    """The ``--set SECTION.KEY=VALUE`` training options a user gave ``nnext demo`` (none for a namespace without
    them, as a Python caller may build): every kind writes them into its plans after its own options, so a
    user's value wins."""
    return [str(o) for o in (getattr(args, "set_options", None) or [])]


def plan_settings(args) -> dict:
    """What a plan step's settings record of :func:`user_options`: ``{"set": [...]}``, or nothing when there are
    none (so the records of demos run without ``--set`` stay valid; adding or dropping one redoes the plan)."""
    options = user_options(args)
    return {"set": options} if options else {}


#: nnU-Net's training entry point with a fixed number of torch threads (argv[1]; nnUNetv2_train itself calls
#: torch.set_num_threads(cpu_count()) for -device cpu) and, when argv[2] is not "-", seeded torch / numpy / random
#: generators (nnU-Net seeds nothing; with nnUNet_n_proc_DA=0 the CPU run is then repeatable)
_TRAIN_WITH_THREADS = ("import sys, random, numpy, torch; n = int(sys.argv.pop(1)); s = sys.argv.pop(1); "
                       "f = torch.set_num_threads; torch.set_num_threads = lambda _: f(n); "
                       "s != '-' and (torch.manual_seed(int(s)), numpy.random.seed(int(s)), random.seed(int(s))); "
                       "from nnunetv2.run.run_training import run_training_entry; sys.argv[0] = 'nnUNetv2_train'; "
                       "run_training_entry()")


def demo_threads(default: int = 1) -> int:
    """torch threads of a demo's training: ``OMP_NUM_THREADS`` when set, else ``default`` (at most the CPUs this
    process may use). ``nnUNetv2_train -device cpu`` takes every core, whose OpenMP threads spin on a busy machine
    (an instance norm 15x slower, epochs 10-40x slower; benchmarks/RESULTS.md); the 2D demos' 32 x 32-pixel
    patches gain little from more threads (default 1), the 3D head-and-neck demo's 32 x 64 x 64 patches do
    (12.5 s instead of 18 s per epoch with 2 threads on 2 idle cores; it asks for 2)."""
    n = os.environ.get("OMP_NUM_THREADS", "")
    if n.isdigit() and int(n) >= 1:
        return int(n)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(int(default), cpus))


def train_command(argv: list, threads: "int | None" = None, seed: "int | None" = None) -> list:
    """``nnUNetv2_train ARGV`` as a command: nnU-Net's own script when neither ``threads`` nor ``seed`` is given,
    else its entry point through :data:`_TRAIN_WITH_THREADS` (``threads`` None = every core, as nnU-Net)."""
    from nnunet_ext.io.paths import nnunet_command

    if threads is None and seed is None:
        return [nnunet_command("nnUNetv2_train"), *map(str, argv)]
    n = threads if threads is not None else os.cpu_count() or 1
    return [sys.executable, "-c", _TRAIN_WITH_THREADS, str(int(n)), "-" if seed is None else str(int(seed)),
            *map(str, argv)]


class Terminated(BaseException):
    """SIGTERM arrived while :func:`run_child` waited (a BaseException: no ``except Exception`` may swallow it)."""


def run_child(cmd: list, name: str = "", **kwargs) -> int:
    """``subprocess.run(cmd, **kwargs).returncode``, except that the child does not outlive this process: it runs
    in its own session (process group), and when this process is stopped while waiting — Ctrl-C, or SIGTERM from
    ``kill`` or a batch scheduler's time limit — the child's whole group (nnU-Net's data-loader workers included)
    is sent SIGTERM, then SIGKILL after 10 s, before this process goes on stopping: Ctrl-C as
    ``KeyboardInterrupt`` (the CLI's "interrupted", exit 130), SIGTERM as one line on stderr naming the child
    (``name``, default the command's file name) and exit 143. Why not ``subprocess.run``: on SIGTERM Python dies
    at once and its child trains on unattended; on Ctrl-C ``subprocess.run`` kills only the direct child."""
    import signal
    import subprocess
    import threading

    def on_sigterm(signum, frame):
        raise Terminated

    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if main_thread else None
    try:
        try:
            return proc.wait()
        finally:  # a SIGTERM between the child's end and this restore still raises Terminated: handled below
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    except BaseException as e:
        _end_group(proc)  # a child that has ended already: nothing to signal, reaped at once
        if isinstance(e, Terminated):
            print(f"terminated (SIGTERM): stopped {name or Path(str(cmd[0])).name} (pid {proc.pid}) and its processes",
                  file=sys.stderr)
            raise SystemExit(128 + signal.SIGTERM) from None
        raise


def _end_group(proc) -> None:
    """SIGTERM to ``proc``'s process group; up to 10 s for ``proc`` to exit, then SIGKILL to what is left of the
    group (workers that outlive their parent); reaps ``proc``."""
    import signal
    import subprocess

    def signal_group(sig) -> None:
        try:
            if hasattr(os, "killpg"):
                os.killpg(proc.pid, sig)
            else:  # Windows: no process groups to signal; the child itself
                proc.terminate() if sig == signal.SIGTERM else proc.kill()
        except (ProcessLookupError, PermissionError):  # the group is gone already
            pass

    signal_group(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
    signal_group(getattr(signal, "SIGKILL", signal.SIGTERM))
    proc.wait()


class StepFailed(RuntimeError):
    """A demo step failed: ``code`` is the demo's exit status; ``reported`` = the failing nnext command already
    printed its own one-line error (exit 2), so the demo adds no second line."""

    def __init__(self, message: str, code: int = 1, reported: bool = False):
        super().__init__(message)
        self.code, self.reported = code, reported


def run_nnext(argv: list) -> None:
    """Run one nnext command in-process; a non-zero exit status -> :class:`StepFailed` (Ctrl-C propagates)."""
    from nnunet_ext.cli.main import main as nnext

    code = nnext([str(a) for a in argv])
    if code:
        raise StepFailed(f"nnext {argv[0]} failed (exit {code}; see its message above)", code=code,
                         reported=code == 2)


def guarded(kind: str, run, args) -> int:
    """``run(args)`` with :func:`demo_threads` torch threads for the steps that run in this process (prediction,
    clicks-eval; the trainings get them through :func:`train_command`), a :class:`StepFailed` turned into one line
    on stderr (none when the failing command already printed its own) and the step's exit status. ``kind`` "" =
    the chest demo (``nnext demo: error: ...``). Why the threads: torch's default (every core) spins on a busy
    machine; measured on 2 cores beside one other job, the head-and-neck demo's clicks-eval of one model took
    114 s with 2 threads and 8 s with 1 (benchmarks/RESULTS.md, issue 18)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(demo_threads())
    try:
        return run(args)
    except StepFailed as e:
        if not e.reported:
            print(f"nnext demo{' ' + kind if kind else ''}: error: {e}", file=sys.stderr)
        return e.code
    finally:
        torch.set_num_threads(before)
