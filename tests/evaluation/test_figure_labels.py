"""Issue 23: colour bars name the map and its unit, every contour has a legend entry, empty predictions say so."""
import numpy as np
import pytest


@pytest.fixture
def drawn_texts(monkeypatch):
    """Every text of every figure saved while the test runs (titles, labels, legends, annotations)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    texts, original = [], Figure.savefig

    def savefig(self, *args, **kwargs):
        texts.extend(t.get_text() for t in self.findobj(Text) if t.get_text())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return texts


def test_case_report_names_map_and_unit_and_says_nothing_predicted(tmp_path, drawn_texts):
    from nnunet_ext.core.uncertainty import map_label
    from nnunet_ext.evaluation.report import save_case_report

    image = np.random.default_rng(0).normal(size=(6, 16, 16)).astype(np.float32)
    ref = np.zeros(image.shape, np.uint8)
    ref[2:4, 5:9, 5:9] = 1
    unc = np.full(image.shape, 0.05, np.float32)
    save_case_report(image, tmp_path / "a.png", spacing_zyx=(2, 1, 1), reference=ref, prediction=np.zeros_like(ref),
                     uncertainty=unc, uncertainty_label=map_label("entropy"))
    assert "predictive entropy (nats)" in drawn_texts
    assert "nothing predicted" in drawn_texts
    assert {"reference", "prediction", "prediction (on the map)"} <= set(drawn_texts)
    drawn_texts.clear()
    pred = ref.copy()
    save_case_report(image, tmp_path / "b.png", spacing_zyx=(2, 1, 1), reference=ref, prediction=pred,
                     uncertainty=unc, uncertainty_label=map_label("mi"))
    assert "mutual information (nats)" in drawn_texts and "nothing predicted" not in drawn_texts


def test_glioma_overview_in_nats_with_a_legend(tmp_path, drawn_texts):
    from nnunet_ext.demos.glioma import overview_png

    shape = (4, 12, 12)
    ref = np.zeros(shape, np.uint8)
    ref[1:3, 3:8, 3:8] = 1
    fused = {t: np.zeros(shape, bool) for t in ("WT", "TC", "ET")}
    overview_png(np.ones(shape, np.float32), ref, fused, np.zeros(shape, np.float32), {}, tmp_path / "o.png")
    assert "WT projection entropy (nats)" in drawn_texts and "nothing predicted" in drawn_texts
    assert not any("bits" in t for t in drawn_texts)
    assert sum("(contour; kernel box on the map)" in t for t in drawn_texts) == 3
