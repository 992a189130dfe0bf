"""Predictors built on ``nnUNetPredictor`` that also export uncertainty maps (``nnext predict``)."""
