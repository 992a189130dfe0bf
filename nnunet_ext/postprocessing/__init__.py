"""Post-processing of segmentations (component filters, ROI handling)."""
