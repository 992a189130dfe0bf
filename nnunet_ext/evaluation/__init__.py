"""Evaluation of segmentations and uncertainty maps (``nnext evaluate``)."""
