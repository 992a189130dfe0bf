"""String-only registration table of the interactive (click-prompt) method, merged by :mod:`nnunet_ext.registry`."""
OPTION_SECTIONS = {"clicks": "nnunet_ext.methods.interactive.options:ClickOptions"}
