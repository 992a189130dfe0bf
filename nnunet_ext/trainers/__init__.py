"""nnU-Net trainers of the extension (found by ``nnUNetv2_train -tr NAME`` through the shim directory)."""
