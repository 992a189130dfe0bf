"""The output files of every ``nnext`` command, as one table (the source of ``documentation/reference/outputs.md``).

Each row: ``(command, file, when, what, module, literal)``. ``module`` is the module that writes (or names) the
file and ``literal`` a piece of its name that appears in a string constant of that module;
``tests/cli/test_reference_docs.py`` checks every ``literal`` against the module's source (AST), so a renamed
output makes the test fail instead of leaving the page wrong. ``CASE`` = the case identifier, ``.nii.gz`` = the
dataset's file ending, ``TAG`` = a region tag (WT / TC / ET, else r1, r2, ...).
"""
from __future__ import annotations

PRED = "nnunet_ext.predictors.loop"
EVAL = "nnunet_ext.evaluation"

OUTPUTS: tuple[tuple[str, str, str, str, str, str], ...] = (
    # synth / convert / plan: raw and preprocessed datasets
    ("synth", "`$nnUNet_raw/DatasetXXX_NAME/{imagesTr,labelsTr,imagesTs,labelsTs}/`", "always",
     "nnU-Net raw dataset (v2), seeded phantoms; `--n-test` cases go to imagesTs / labelsTs",
     "nnunet_ext.synthetic.dataset", "Ts"),
    ("synth", "`dataset.json`", "always", "dataset.json v2 (channel names, labels or regions, numTraining)",
     "nnunet_ext.synthetic.dataset", "dataset.json"),
    ("synth", "`phantom_info.json`", "always", "per case: lesion centres (voxels, LPS mm), locations, distractors",
     "nnunet_ext.synthetic.dataset", "phantom_info.json"),
    ("synth chest", "`lungmasksTr/`, `lungmasksTs/`", "kind chest", "lung masks, 1 = right, 2 = left lung",
     "nnunet_ext.synthetic.chest", "lungmasks"),
    ("synth brain", "`brainmasksTr/`, `brainmasksTs/`", "kind brain", "brain masks", "nnunet_ext.synthetic.brain",
     "brainmasks"),
    ("synth nodule", "`labelsTr_raters/CASE_rater{k}.nii.gz`", "kind nodule", "every rater's mask",
     "nnunet_ext.synthetic.dataset", "_raters"),
    ("plan", "`$nnUNet_preprocessed/DatasetXXX_NAME/PLANS.json`", "always",
     "nnU-Net plans (+ the `nnext_training` block of each configuration); `-overwrite_plans_name` writes a copy "
     "under a new identifier", "nnunet_ext.planners.plans_edit", ".json"),
    ("convert nsclc", "`imagesTr/CASE_0000.nii.gz`, `labelsTr/CASE.nii.gz`", "always",
     "CT in HU, tumour label (RTSTRUCT ROI, default GTV-1)", "nnunet_ext.conversion.nsclc", "_0000.nii.gz"),
    ("convert nsclc", "`lungmasksTr/CASE.nii.gz`", "`--lung-masks`", "1 = right, 2 = left lung",
     "nnunet_ext.conversion.nsclc", "lungmasksTr"),
    ("convert nsclc / brats / hecktor / lidc", "`conversion_log.json`", "always",
     "per case: source files, what was converted or why it was skipped", "nnunet_ext.conversion.nsclc",
     "conversion_log.json"),
    ("convert brats", "`imagesTr/CASE_000{0..3}.nii.gz`, `labelsTr/`, `imagesTs/`", "always",
     "T1, T1ce, T2, FLAIR; region-based labels (WT, TC, ET)", "nnunet_ext.conversion.brats", "imagesTs"),
    ("convert brats-back", "`OUT/CASE.nii.gz`", "always", "predictions in the year's BraTS label values",
     "nnunet_ext.conversion.brats", ".nii.gz"),
    ("convert hecktor", "`imagesTr/CASE_0000.nii.gz`, `CASE_0001.nii.gz`, `labelsTr/`", "always",
     "CT [-1024, 3071] HU, PET on the CT grid [0, 50] SUV; GTVp = 1, GTVn = 2", "nnunet_ext.conversion.hecktor",
     "imagesTr"),
    ("convert lidc", "`imagesTr/`, `labelsTr/`, `labelsTr_raters/CASE_rater{k}.nii.gz`", "always",
     "nodule crops with every radiologist's mask", "nnunet_ext.conversion.lidc", "labelsTr_raters"),
    ("convert raters", "`labelsTr/CASE.nii.gz` (rater-set codes), `dataset.json`", "always",
     "all raters in one label map", "nnunet_ext.conversion.raters", "dataset.json"),
    ("roi-dataset", "`$nnUNet_raw/DatasetXXX/{imagesTr,labelsTr}/`, `roi_info.json`", "always",
     "ROI crops (stage-2 data of the lung cascade); roi_info.json records boxes and the margin",
     "nnunet_ext.methods.lung_cascade.roi_dataset", "roi_info.json"),
    ("kernel-dataset", "`imagesTr/`, `labelsTr/`, `kernel_info.json`", "always",
     "uncertainty-kernel crops (3D refiner data); kernel_info.json: case, region, start, size, sum",
     "nnunet_ext.methods.glioma.kernel_dataset", "kernel_info.json"),
    # predict
    ("predict", "`CASE.nii.gz`", "always", "segmentation (uint8), the input's geometry; written last, so its "
     "presence marks the case done", PRED, "file_ending"),
    ("predict", "`CASE_uncertainty.nii.gz`", "a map is chosen (`--uncertainty`, default the method's)",
     "float32 uncertainty map (entropy / variance / MI in nats, the method's default)", PRED, "uncertainty"),
    ("predict", "`CASE_<map>.nii.gz`", "`--all-maps`",
     "every other map of the method (`-m tta_mc`: entropy, variance, mi)",
     "nnunet_ext.predictors.tta_mc", "variance"),
    ("predict", "`CASE_probabilities.nii.gz`", "`--save_probabilities`",
     "float32 class probabilities, classes along the 4th axis (read by `nnext evaluate --probabilities`)", PRED,
     "_probabilities"),
    ("predict", "`CASE.npz`, `CASE.pkl`", "`--save_probabilities`",
     "nnU-Net's own files (`probabilities`, classes first; properties), read by `nnUNetv2_ensemble`", PRED, ".npz"),
    ("predict", "`predict_settings.json`, `dataset.json`, `plans.json`", "always",
     "what produced the folder (method, model, folds, options, seed, calibration)", PRED, "predict_settings.json"),
    ("predict", "`.nnext_settings.json`", "always", "output-defining settings; a re-run with others is refused",
     "nnunet_ext.io.settings_record", ".nnext_settings.json"),
    ("predict", "`confidence.csv`", "maps are written",
     "one row per case and structure (component 0) and per predicted connected component: volume, mean and boundary "
     "uncertainty, pooled pairwise Dice of the passes, confidence in [0, 1], flag",
     "nnunet_ext.predictors.confidence_table", "confidence.csv"),
    ("predict", "`png/CASE.png`", "`--png`", "overlay of image, prediction and uncertainty",
     "nnunet_ext.evaluation.report", ".png"),
    ("predict -m cascade", "`CASE_cascade.json`", "always",
     "lung-mask source, every stage-1 component and why it was kept or dropped, ROI boxes",
     "nnunet_ext.methods.lung_cascade.cascade_predictor", "cascade"),
    ("predict -m cascade", "`CASE_coarse`, `CASE_coarse_filtered`, `CASE_lungmask` (.nii.gz)",
     "`--save-intermediates`", "stage-1 segmentation before / after the filter, lung mask",
     "nnunet_ext.methods.lung_cascade.cascade_predictor", "coarse_filtered"),
    ("predict -m spherical", "`CASE_prob_TAG`, `CASE_entropy_TAG` (.nii.gz), `CASE_spherical.json`", "always",
     "per region mean probability and eq. 1 entropy; origins used", "nnunet_ext.methods.glioma.spherical_predictor",
     "spherical"),
    ("predict -m kernel_refine", "`CASE_{p2d,p3d,coverage,prob,entropy}_TAG.nii.gz`, `CASE_kernels.json`",
     "always", "2D and 3D probabilities, kernels per voxel, fused probability, entropy; the kernels",
     "nnunet_ext.methods.glioma.kernel_refine_predictor", "coverage"),
    ("predict -m mcm", "`CASE_hc.nii.gz`, `CASE_lc.nii.gz`", "always", "high / low-confidence masks",
     "nnunet_ext.methods.multi_rater.mcm_predictor", "lc"),
    ("predict -m interactive", "`CASE_clicks.json`", "`--clicks`", "the clicks used (and pruned components)",
     "nnunet_ext.methods.interactive.interactive_predictor", "clicks"),
    # evaluation
    ("evaluate", "`summary.json` (`-o`)", "always",
     "per case and label: Dice, IoU, HD95, NSD, boundary Dice, ...; mean / median; uncertainty metrics",
     "nnunet_ext.evaluation.summary_io", ".json"),
    ("evaluate", "`summary.csv`", "always", "one row per case and label", "nnunet_ext.evaluation.summary_io", ".csv"),
    ("evaluate", "`summary_risk_coverage.png`", "a `confidence.csv` in `-pred` (or `--confidence`)",
     "risk-coverage curve of the confidence (failure detection, AURC)", "nnunet_ext.evaluation.cli",
     "_risk_coverage.png"),
    ("evaluate", "`summary_reliability.png`", "`--probabilities`", "reliability diagram",
     "nnunet_ext.evaluation.cli", "_reliability.png"),
    ("compare", "`out.json`", "`-o`", "paired statistics of two summaries", "nnunet_ext.evaluation.compare_cli",
     "out.json"),
    ("calibrate", "`$nnUNet_results/.../TR__P__C/calibration.json`", "always",
     "temperature(s), held-out ECE / Brier / NLL, the model it belongs to", "nnunet_ext.core.calibration_file",
     "calibration.json"),
    ("evaluate-raters", "`summary.json`, `summary.csv`, `--kde-png` PNG", "always (PNG with `--kde-png`)",
     "metrics vs each rater, union, intersection; HC / LC; HU kernel density", "nnunet_ext.methods.multi_rater."
     "evaluate_raters", ".csv"),
    ("clicks-eval", "`clicks_eval.csv`, `summary.json`, `dice_vs_clicks.png`", "always",
     "Dice / NSD / HD95 per case, click step and class; means; the curve", "nnunet_ext.methods.interactive."
     "clicks_eval", "dice_vs_clicks.png"),
    # method commands
    ("lungmask", "`OUT/CASE.nii.gz`", "always", "lung mask, 1 = right, 2 = left lung",
     "nnunet_ext.methods.lung_cascade.lungmask_cli", ".nii.gz"),
    ("postprocess lung", "`OUT/CASE.nii.gz`, `postprocess_log.json`", "always",
     "filtered segmentations; per component: overlap, zone, kept / dropped and why",
     "nnunet_ext.methods.lung_cascade.postprocess_cli", "postprocess_log.json"),
    ("kernels", "`KERNELS.json` (`-o`)", "always", "kernel boxes and uncertainty sums",
     "nnunet_ext.methods.glioma.kernels_cli", "KERNELS.json"),
    ("fusion-fit", "`PARAMS.json` (`-o`)", "always", "w2D, w3D, b per region and the fitted Dice",
     "nnunet_ext.methods.glioma.kernel_refine_predictor", "PARAMS.json"),
    # demos
    ("demo", "`DIR/summary.json`, `DIR/overview.png`", "always", "metrics of the demo's test cases, a figure",
     "nnunet_ext.demos.cli", "overview.png"),
    ("demo", "`DIR/.nnext_demo_<step>.json`", "always", "settings of each finished step (reused when equal)",
     "nnunet_ext.demos.steps", ".nnext_demo_"),
)


def outputs_page(header: str) -> str:
    out = [header, "# Output files\n\n",
           "What each `nnext` command writes. `CASE` = case identifier, `.nii.gz` = the dataset's file ending, "
           "`TAG` = region tag (WT / TC / ET, else r1, r2, ...). Every file is written atomically; a folder's "
           "`.nnext_settings.json` records the settings that produced it. `nnext predict --maps-dir DIR` moves "
           "everything but the segmentation and nnU-Net's `.npz` / `.pkl` into DIR.\n\n",
           "| command | file | when | what |\n|---|---|---|---|\n"]
    out += [f"| `nnext {cmd}` | {file} | {when} | {what} |\n" for cmd, file, when, what, _, _ in OUTPUTS]
    return "".join(out)
