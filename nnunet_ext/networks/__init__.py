"""nnU-Net-compatible network classes (buildable by dotted path from plans)."""
