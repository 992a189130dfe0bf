"""Learning-rate schedules as pure functions of the epoch (the trainer's scheduler only evaluates them).

``warmup_cosine_lr`` (HN-UISeg, Chu 2026 sec. 2.2: AdamW, cosine schedule with 10 warm-up epochs)::

    lr(e) = base * (e + 1) / W                                   for e < W   (linear warm-up)
    lr(e) = base * 0.5 * (1 + cos(pi * (e - W) / (E - W)))       for W <= e < E

with E = number of epochs and W = warm-up epochs (W >= E: warm-up only). The paper gives neither the warm-up
shape nor the final value: we warm up linearly from base / W and decay to 0 at e = E (never reached: the last
epoch is E - 1).
"""
from __future__ import annotations

import math


def warmup_cosine_lr(epoch: int, base_lr: float, num_epochs: int, warmup_epochs: int = 10) -> float:
    if epoch < 0 or num_epochs < 1 or warmup_epochs < 0:
        raise ValueError(f"need epoch >= 0, num_epochs >= 1, warmup_epochs >= 0; got {epoch}, {num_epochs}, "
                         f"{warmup_epochs}")
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / warmup_epochs
    if num_epochs <= warmup_epochs:
        return base_lr
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / (num_epochs - warmup_epochs)))
