"""Experiment planners, run by ``nnext plan`` (nnU-Net has no hook for external ``-pl`` classes)."""
