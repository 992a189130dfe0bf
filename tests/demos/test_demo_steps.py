"""``nnunet_ext.demos.steps``: a failed demo step is one line on stderr (none more when the failing nnext command
already printed its own) with the step's exit status; every demo kind goes through it."""
import pytest

from nnunet_ext.demos import steps


def test_failing_nnext_command_gives_its_own_line_only(tmp_path, capsys):
    def run(args):
        steps.run_nnext(["evaluate", "-ref", tmp_path / "none", "-pred", tmp_path / "none", "-o", tmp_path / "s.json"])
        return 0

    assert steps.guarded("glioma", run, None) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nnext evaluate: error:") and "none" in err[0], err


def test_unreported_failure_is_one_demo_line_with_its_code(capsys):
    def run(args):
        raise steps.StepFailed("nnUNetv2_train failed (exit 3; see its output above)")

    assert steps.guarded("nodule", run, None) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "nnext demo nodule: error: nnUNetv2_train failed (exit 3; see its output above)"]
    assert steps.guarded("nodule", lambda a: a, 0) == 0  # success passes the run's own status through


def test_in_process_steps_run_with_the_demo_threads_and_the_setting_is_restored(monkeypatch):
    """Prediction and clicks-eval run inside the demo's process: torch gets demo_threads() threads there (1 when
    OMP_NUM_THREADS is unset, not every core), also when the step fails, and the caller's setting comes back."""
    import torch

    before = torch.get_num_threads()
    seen = []
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert steps.guarded("headneck", lambda a: seen.append(torch.get_num_threads()) or 0, None) == 0
    monkeypatch.delenv("OMP_NUM_THREADS")

    def failing(args):
        seen.append(torch.get_num_threads())
        raise steps.StepFailed("x", reported=True)

    assert steps.guarded("headneck", failing, None) == 1
    assert seen == [3, 1] and torch.get_num_threads() == before


def test_demo_threads_default_is_capped_at_the_usable_cpus_and_omp_num_threads_wins(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(steps.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert (steps.demo_threads(), steps.demo_threads(2), steps.demo_threads(8)) == (1, 2, 4)
    monkeypatch.setattr(steps.os, "sched_getaffinity", lambda pid: {5})
    assert steps.demo_threads(2) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert steps.demo_threads(2) == 3


@pytest.mark.parametrize("kind", ["glioma", "headneck", "nodule"])
def test_every_demo_kind_runs_through_guarded(kind, monkeypatch):
    import importlib

    module = importlib.import_module(f"nnunet_ext.demos.{kind}")
    seen = {}
    monkeypatch.setattr(steps, "guarded", lambda k, run, args: seen.setdefault("kind", k) and 7)
    assert getattr(module, f"run_{kind}")(object()) == 7 and seen["kind"] == kind


def test_steps_reuse_only_with_matching_settings(tmp_path, capsys):
    """must_redo: reuse only with a record of equal settings and existing outputs; a redo drops the record first;
    an earlier redo in the same run forces the later steps."""
    from nnunet_ext.demos.steps import STEP_RECORD, DemoSteps

    steps = DemoSteps(tmp_path, total=2, label="glioma")
    plan = {"n": 6, "seed": 0, "epochs": 10}
    record = tmp_path / STEP_RECORD.format("plan")
    assert steps.must_redo("plan", plan, outputs_exist=False)  # nothing made yet
    steps.done("plan", plan)
    assert not steps.must_redo("plan", plan, outputs_exist=True)
    assert "reusing plan" in capsys.readouterr().out
    assert steps.must_redo("plan", plan, outputs_exist=False)  # record but outputs gone
    steps.done("plan", plan)
    # a changed setting is named, and the old record is dropped before the redo ...
    assert steps.must_redo("plan", {**plan, "epochs": 20}, outputs_exist=True)
    assert "settings changed: epochs" in capsys.readouterr().out
    assert not record.exists()
    # ... so a redo that fails half-way cannot be mistaken later for the old, complete step
    assert steps.must_redo("plan", plan, outputs_exist=True)
    assert "no settings record" in capsys.readouterr().out
    # a later step's settings include the earlier ones: a new dataset invalidates the model
    train = {**plan, "trainer": "SphericalProjectionTrainer"}
    steps.done("train_2d", train)
    assert steps.must_redo("train_2d", {**train, "seed": 1}, outputs_exist=True)
    # equal settings are not enough once an earlier step was redone in this run (e.g. a retrained model)
    steps.done("refine_train", train)
    assert not steps.must_redo("refine_train", train, outputs_exist=True)
    assert steps.must_redo("refine_train", train, outputs_exist=True, earlier_redone=True)
    assert "an earlier step was redone" in capsys.readouterr().out
    assert not (tmp_path / STEP_RECORD.format("refine_train")).exists()


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (an exited child not yet reaped by its new parent)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        os.kill(pid, 0)
        return True


#: a "training" that starts a worker of its own (as nnU-Net's data loaders) and writes both pids
_CHILD = ("import subprocess, sys, time; w = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']);"
          " open(sys.argv[1], 'w').write(f'{__import__(\"os\").getpid()} {w.pid}'); time.sleep(120)")
#: the demo process: runs the training through run_child
_PARENT = ("import sys; from nnunet_ext.demos.steps import run_child; "
           "sys.exit(run_child([sys.executable, '-c', sys.argv[1], sys.argv[2]], name='training'))")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_stopping_the_demo_stops_its_training_and_the_training_s_workers(sig, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    pids = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", _PARENT, _CHILD, str(pids)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pids.is_file() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline and parent.poll() is None, "the child did not start"
        time.sleep(0.1)
    child, worker = map(int, pids.read_text().split())
    parent.send_signal(getattr(signal, sig))
    code = parent.wait(60)
    err = parent.stderr.read()
    deadline = time.monotonic() + 20
    while (_alive(child) or _alive(worker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child) and not _alive(worker)  # subprocess.run leaves both running after SIGTERM
    if sig == "SIGTERM":
        assert code == 143 and err.strip().splitlines()[-1].startswith("terminated (SIGTERM): stopped training (pid ")
    else:
        assert code != 0 and "KeyboardInterrupt" in err
    assert os.getpgid(0) != child  # the training had its own group: signalling it did not reach pytest


def test_sigterm_just_as_the_training_ends_is_the_one_line_too(monkeypatch, capsys):
    """A SIGTERM that lands after the child has exited, while run_child restores the SIGTERM handler, ends the demo
    like one during the wait: the line and exit 143, no traceback (simulated: the restore raises what the
    handler raises)."""
    import signal
    import sys

    real = signal.signal
    calls = []

    def restore_interrupted(sig, handler):
        calls.append(handler)
        if len(calls) == 2:  # the second call restores the previous handler: the signal arrives then
            real(sig, handler)
            raise steps.Terminated
        return real(sig, handler)

    monkeypatch.setattr(signal, "signal", restore_interrupted)
    with pytest.raises(SystemExit) as stop:
        steps.run_child([sys.executable, "-c", "pass"], name="nnUNetv2_train")
    assert stop.value.code == 143 and len(calls) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("terminated (SIGTERM): stopped nnUNetv2_train (pid "), err
