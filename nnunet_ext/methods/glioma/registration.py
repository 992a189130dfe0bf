"""String-only registration table of the glioma method (yang2025), merged by :mod:`nnunet_ext.registry`."""
OPTION_SECTIONS = {"spherical": "nnunet_ext.methods.glioma.options:SphericalOptions",
                   "refiner": "nnunet_ext.methods.glioma.options:RefinerOptions"}
