"""String-only registration table of the glioma method (yang2025), merged by :mod:`nnunet_ext.registry`."""
OPTION_SECTIONS = {"spherical": "nnunet_ext.methods.glioma.options:SphericalOptions",
                   "refiner": "nnunet_ext.methods.glioma.options:RefinerOptions"}

#: nnUNetv2_train -tr NAME -> ("module", one-line description)
TRAINERS = {
    **{
        n: ("nnunet_ext.methods.glioma.spherical_trainer", d)
        for n, d in {
            "SphericalProjectionTrainer": (
                "2D + random spherical-projection augmentation, regions (sigmoid), Dice + BCE (yang2025)"
            ),
            "SphericalProjectionBCETrainer": (
                "2D spherical projection, the paper's BCE loss and Adam lr 1e-5 (yang2025)"
            ),
            "SphericalProjectionTrainer_WT": "as SphericalProjectionTrainer, one model for region WT only (yang2025)",
            "SphericalProjectionTrainer_TC": "as SphericalProjectionTrainer, one model for region TC only (yang2025)",
            "SphericalProjectionTrainer_ET": "as SphericalProjectionTrainer, one model for region ET only (yang2025)",
            "SphericalProjectionBCETrainer_WT": (
                "as SphericalProjectionBCETrainer, one model for region WT only (yang2025)"
            ),
            "SphericalProjectionBCETrainer_TC": (
                "as SphericalProjectionBCETrainer, one model for region TC only (yang2025)"
            ),
            "SphericalProjectionBCETrainer_ET": (
                "as SphericalProjectionBCETrainer, one model for region ET only (yang2025)"
            ),
        }.items()
    },
    "KernelRefinerBCETrainer": (
        "nnunet_ext.methods.glioma.refiner_trainer",
        "3D region refiner for kernel crops: BCE per region (sigmoid), Adam lr 1e-5 (plans refiner.lr), "
        "no dropout (yang2025 sec. 3.1)",
    ),
}

#: commands -> ("module", one-line description)
COMMANDS = {
    'kernels': ('nnunet_ext.methods.glioma.kernels_cli',
        'high-uncertainty kernels of an uncertainty map (yang2025 kernel search)'),
    'kernel-dataset': ('nnunet_ext.methods.glioma.kernel_dataset',
        'raw dataset of uncertainty-kernel crops (3D refinement training data, yang2025)'),
    'fusion-fit': ('nnunet_ext.methods.glioma.fusion_cli',
        'PSO fit of the 2D/3D sigmoid fusion weights per region (yang2025 eq. 2)'),
}

#: predict_methods -> ("module", one-line description)
PREDICT_METHODS = {
    'spherical': ('nnunet_ext.methods.glioma.spherical_predictor:SphericalMethod',
        '2D spherical-projection ensemble (origins on a stride grid): mean, histogram entropy per region (yang2025)'),
    'kernel_refine': ('nnunet_ext.methods.glioma.kernel_refine_predictor:KernelRefineMethod',
        'spherical ensemble -> uncertainty kernels -> 3D model per kernel -> sigmoid 2D/3D fusion (yang2025)'),
}
