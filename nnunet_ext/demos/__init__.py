"""Demo variants of ``nnext demo KIND`` (the chest demo lives in nnunet_ext.demos.cli)."""
