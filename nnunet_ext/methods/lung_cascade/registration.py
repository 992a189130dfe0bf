"""String-only registration table of the lung cascade (isler2025), merged by :mod:`nnunet_ext.registry`."""
OPTION_SECTIONS = {"uncertainty_loss": "nnunet_ext.methods.lung_cascade.options:UncertaintyLossOptions",
                   "lovasz": "nnunet_ext.methods.lung_cascade.options:LovaszOptions",
                   "distance": "nnunet_ext.methods.lung_cascade.options:DistanceOptions"}

#: trainers -> ("module", one-line description)
TRAINERS = {
    'UncertaintyTrainer': ('nnunet_ext.methods.lung_cascade.uncertainty_trainer',
        'MC dropout + L = a*Dice + (1-a)*CE, a = exp(-U), U = MC-dropout variance (isler2025)'),
    'UncertaintyLovaszTrainer': ('nnunet_ext.methods.lung_cascade.lovasz_trainer',
        'MC dropout + L = Lovasz-softmax[w = 1 + U] + CE, U = MC-dropout variance (isler2025)'),
    'DistanceTransformTrainer': ('nnunet_ext.methods.lung_cascade.distance_trainer',
        'MC dropout + Dice[w] + CE[w], w = 1 + 10*exp(-d^2/2s^2), d = mm to boundary (isler2025)'),
}

#: commands -> ("module", one-line description)
COMMANDS = {
    'lungmask': ('nnunet_ext.methods.lung_cascade.lungmask_cli',
        'lung masks (1 = right, 2 = left) with lungmask or a classical HU algorithm'),
    'postprocess': ('nnunet_ext.methods.lung_cascade.postprocess_cli',
        'post-process segmentations (lung: anatomy-aware component filter)'),
    'roi-dataset': ('nnunet_ext.methods.lung_cascade.roi_dataset',
        'nnU-Net raw dataset of ROI crops (stage 2 of the lung cascade)'),
}

#: predict_methods -> ("module", one-line description)
PREDICT_METHODS = {
    'cascade': ('nnunet_ext.methods.lung_cascade.cascade_predictor:CascadeMethod',
        'stage 1 -> lung-aware component filter -> ROI crops -> stage-2 MC dropout (isler2025)'),
}
