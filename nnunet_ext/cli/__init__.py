"""The ``nnext`` command line: one sub-command per module, imported only when used."""
