"""String-only registration table of the multi-rater method (yang-wang), merged by :mod:`nnunet_ext.registry`."""
OPTION_SECTIONS = {"ugsnet": "nnunet_ext.methods.multi_rater.options:UGSNetOptions",
                   "multi_annotation": "nnunet_ext.methods.multi_rater.options:MultiAnnotationOptions",
                   "rater_training": "nnunet_ext.methods.multi_rater.options:RaterTrainingOptions"}

#: trainers -> ("module", one-line description)
TRAINERS = {
    "MultiAnnotationTrainer": (
        "nnunet_ext.methods.multi_rater.multi_annotation_trainer",
        "rater-set dataset: Phi = mean_j BCE(X, GT_j) + Dice vs mean rater mask (yang-wang eq. 3)",
    ),
    "UGSNetTrainer": (
        "nnunet_ext.methods.multi_rater.ugsnet_trainer",
        "UGS-Net head (UAM + IUCM, Gabor / Otsu FAABs) on nnU-Net's U-Net, L = .5 L_MCM + .5 Phi_a + Phi_b (yang-wang)",
    ),
    "SingleReaderTrainer": (
        "nnunet_ext.methods.multi_rater.multi_annotation_trainer",
        "rater-set dataset, one reader as target (rater_training.reader, 0 = Label_1): the identical-arm baseline "
        "of the multi-rater trainers (yang-wang)",
    ),
    "UGSNetNoIUCMTrainer": (
        "nnunet_ext.methods.multi_rater.ugsnet_trainer",
        "ablation: UGS-Net without the IUCM (UAM heads, X_S from Concat(R, R_Uni, R_LC, R_HC)), eq. 4 loss (yang-wang)",
    ),
}

#: commands -> ("module", one-line description)
COMMANDS = {
    "evaluate-raters": (
        "nnunet_ext.methods.multi_rater.evaluate_raters",
        "multi-rater evaluation: vs rater 0 / each rater / union / intersection, HC / LC, complex nodules, "
        "HU KDE (yang-wang)",
    ),
}

#: predict_methods -> ("module", one-line description)
PREDICT_METHODS = {
    'mcm': ('nnunet_ext.methods.multi_rater.mcm_predictor:MCMMethod',
        'UGS-Net model: X_S + high / low-confidence masks, MCM map, LC probability (yang-wang)'),
}
