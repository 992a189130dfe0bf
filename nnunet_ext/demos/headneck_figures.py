"""Figures of ``nnext demo headneck``: the before / after panel of one test case and the Dice-vs-clicks curves
of the three training stages (PNG, written through :func:`nnunet_ext.io.atomic_write.save_figure`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def before_after_png(ct, ref, before, after, u_before, u_after, clicks_zyx, path, title="") -> int:
    """Two rows (before / after the clicks): CT with reference (white) and predicted GTVp (red) / GTVn (blue)
    contours and the clicks (+ green positive, x yellow negative; shown within one slice), and the
    uncertainty map. The slice shown is the one with the most clicks, then the most reference voxels.
    Returns the slice index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_ext.io.atomic_write import save_figure

    votes = np.zeros(ct.shape[0])
    for cz, _, _, _ in clicks_zyx:
        votes[int(cz)] += 1
    area = (ref > 0).sum((1, 2)) if ref.any() else np.zeros(ct.shape[0])
    z = int(np.lexsort((area, votes))[-1]) if (votes.any() or area.any()) else ct.shape[0] // 2
    vmax = max(float(np.max(u_before)), float(np.max(u_after)), 1e-6)
    fig, axes = plt.subplots(2, 2, figsize=(8, 8))
    for row, (seg, unc, name) in enumerate(((before, u_before, "automatic"), (after, u_after, "after clicks"))):
        ax = axes[row, 0]
        ax.imshow(np.clip(ct[z], -200, 300), cmap="gray")
        if (ref[z] > 0).any():
            ax.contour(ref[z] > 0, levels=[0.5], colors="white", linewidths=1)
        for value, colour in ((1, "red"), (2, "deepskyblue")):
            if (seg[z] == value).any():
                ax.contour(seg[z] == value, levels=[0.5], colors=colour, linewidths=1)
        if row == 1:
            for cz, cy, cx, positive in clicks_zyx:
                if abs(cz - z) <= 1:
                    ax.plot(cx, cy, "+" if positive else "x", color="lime" if positive else "yellow", ms=10, mew=2)
        ax.set_title(name)
        if not seg.any():
            ax.text(0.5, 0.05, "nothing predicted", transform=ax.transAxes, ha="center", color="white",
                    bbox={"facecolor": "black", "alpha": 0.6, "pad": 2})
        im = axes[row, 1].imshow(unc[z], cmap="magma", vmin=0, vmax=vmax)
        axes[row, 1].set_title(f"{name}: predictive entropy")
        fig.colorbar(im, ax=axes[row, 1], fraction=0.046, label="predictive entropy (nats)")
    for ax in axes.ravel():
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, label=n) for c, n in (("white", "reference"), ("red", "predicted GTVp"),
                                                              ("deepskyblue", "predicted GTVn"))]
    handles += [Line2D([], [], color=c, marker=m, linestyle="", mew=2, label=n)
                for c, m, n in (("lime", "+", "positive click"), ("yellow", "x", "negative click"))]
    fig.legend(handles=handles, loc="lower center", ncols=5, fontsize=8, frameon=False)
    fig.suptitle(f"{title}\nslice {z} (clicks shown within one slice)")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_figure(fig, path, format="png", dpi=90)
    plt.close(fig)
    return z


def stages_png(per_stage: dict, path: Path) -> None:
    """Mean Dice vs clicks per class, one panel per stage (stage 1 | stage 2 | stage 3), shared axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nnunet_ext.io.atomic_write import save_figure

    fig, axes = plt.subplots(1, len(per_stage), figsize=(4 * len(per_stage), 3.5), sharey=True)
    titles = {"stage1": "stage 1 (reference clicks)", "stage2": "stage 2 (automatic)",
              "stage3": "stage 3 (clicks in own errors)"}
    for ax, (stage, dice) in zip(axes, per_stage.items()):
        for cls, curve in dice.items():
            steps = sorted(int(k) for k in curve)
            ax.plot(steps, [curve[str(k)] for k in steps], marker="o", label=cls)
            ax.set_xticks(steps)
        ax.set_title(titles.get(stage, stage))
        ax.set_xlabel("clicks per class (errors protocol)")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("mean Dice")
    axes[0].legend()
    fig.tight_layout()
    save_figure(fig, path, format="png", dpi=90)
    plt.close(fig)
