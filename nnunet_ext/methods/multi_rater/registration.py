"""String-only registration table of the multi-rater method (yang-wang), merged by :mod:`nnunet_ext.registry`."""
OPTION_SECTIONS = {"ugsnet": "nnunet_ext.methods.multi_rater.options:UGSNetOptions",
                   "multi_annotation": "nnunet_ext.methods.multi_rater.options:MultiAnnotationOptions",
                   "rater_training": "nnunet_ext.methods.multi_rater.options:RaterTrainingOptions"}
