"""String-only registration table of the interactive (click-prompt) method, merged by :mod:`nnunet_ext.registry`."""
OPTION_SECTIONS = {"clicks": "nnunet_ext.methods.interactive.options:ClickOptions"}

#: trainers -> ("module", one-line description)
TRAINERS = {
    'ClickPromptTrainer': ('nnunet_ext.methods.interactive.click_prompt_trainer',
        'MC dropout + one click-prompt channel per class, stage 1: clicks from the reference with p = 0.5 (chu2026)'),
    'ClickPromptAutoTrainer': ('nnunet_ext.methods.interactive.click_prompt_trainer',
        'click-prompt network, stage 2: automatic fine-tuning, prompts zero (chu2026)'),
    'ClickPromptErrorTrainer': ('nnunet_ext.methods.interactive.click_prompt_trainer',
        'click-prompt network, stage 3: clicks in the errors of its own prediction (chu2026)'),
}

#: commands -> ("module", one-line description)
COMMANDS = {
    'clicks-eval': ('nnunet_ext.methods.interactive.clicks_eval',
        'simulated-click evaluation of a click-prompt model: Dice / NSD / HD95 per click step (chu2026)'),
}

#: predict_methods -> ("module", one-line description)
PREDICT_METHODS = {
    "interactive": (
        "nnunet_ext.methods.interactive.interactive_predictor:InteractiveMethod",
        "click-prompt model: clicks JSON -> prompt channels, MC dropout + TTA entropy; "
        "no clicks = automatic branch (chu2026)",
    ),
}
