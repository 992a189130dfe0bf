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


@pytest.mark.parametrize("kind", ["glioma", "headneck", "nodule"])
def test_every_demo_kind_runs_through_guarded(kind, monkeypatch):
    import importlib

    module = importlib.import_module(f"nnunet_ext.demos.{kind}")
    seen = {}
    monkeypatch.setattr(steps, "guarded", lambda k, run, args: seen.setdefault("kind", k) and 7)
    assert getattr(module, f"run_{kind}")(object()) == 7 and seen["kind"] == kind
