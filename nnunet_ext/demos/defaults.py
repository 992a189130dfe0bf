"""Per-kind defaults of ``nnext demo`` (shared by the command and each kind's module)."""

MAX_CASES = 200
#: per-kind defaults of the options left unset (``None``) on the command line; ``-c None`` = not applicable
KIND_DEFAULTS = {
    "chest": {"n": 8, "n_test": 3, "c": "2d", "epochs": 30, "iterations": 50, "n_samples": 8},
    "nodule": {"n": 8, "n_test": 3, "c": "2d", "epochs": 5, "iterations": 100, "n_samples": 8},
    "glioma": {"n": 6, "n_test": 2, "c": None, "epochs": 15, "iterations": 20, "n_samples": 8},
    # 40 training phantoms: with 8 the models memorise them, and stage 3 never trains a click on the errors they
    # make on new cases (benchmarks/RESULTS.md, issue 18, session 9); 40 cost ~10 s more (synth + preprocessing)
    "headneck": {"n": 40, "n_test": 3, "c": "3d_fullres", "epochs": 10, "iterations": 50, "n_samples": 8},
}
KIND_HELP = ("chest (default: MC dropout + TTA on chest CT phantoms), nodule (UGS-Net on multi-rater nodule "
             "phantoms), glioma (spherical 2D ensemble + 3D kernel refinement + PSO fusion on brain phantoms), "
             "headneck (click-prompt model, simulated clicks, uncertainty on PET/CT phantoms)")
