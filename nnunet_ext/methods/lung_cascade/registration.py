"""String-only registration table of the lung cascade (isler2025), merged by :mod:`nnunet_ext.registry`."""
OPTION_SECTIONS = {"uncertainty_loss": "nnunet_ext.methods.lung_cascade.options:UncertaintyLossOptions",
                   "lovasz": "nnunet_ext.methods.lung_cascade.options:LovaszOptions",
                   "distance": "nnunet_ext.methods.lung_cascade.options:DistanceOptions"}
