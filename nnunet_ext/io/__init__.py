"""Shared I/O layer (files nnU-Net and the methods read and write)."""
