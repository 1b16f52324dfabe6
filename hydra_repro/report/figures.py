"""Figures 3 and 6 and the search trace, as PNG (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from typing import Any

from hydra_repro.core.stats import seed_interval
from hydra_repro.report.inputs import COMMAND, PERFMODEL_PLACEHOLDER, PROBE, Inputs
from hydra_repro.report.numbers import spearman
from hydra_repro.report.render import header
from hydra_repro.report.results_tables import probe_label
from hydra_repro.report.search_study import MIN_PER_ARM, study


def _png(fig: Any, inp: Inputs) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    meta = {"Description": header(inp.profile, "").strip(), "Software": COMMAND}
    fig.savefig(buf, format="png", dpi=120, metadata=meta)
    plt.close(fig)
    return buf.getvalue()


def fig_search(inp: Inputs) -> bytes:
    """Beyond the paper: best objective found vs schedules trained, guided and random arms, one panel per role.
    Curves (mean over search seeds, band = 95% t-interval) only for a study of >= 8 schedules per arm; below that
    the points alone, so that a one-vs-two comparison never reads as a trend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    roles = list(inp.searches) or [None]
    fig, axes = plt.subplots(1, len(roles), figsize=(5 * len(roles), 3.5), squeeze=False)
    for ax, role in zip(axes[0], roles, strict=True):
        if role is None:
            ax.axis("off")
            ax.text(0.5, 0.5, "No search result at this profile (see tables/README.md).", ha="center", va="center")
            continue
        s = study(inp.searches[role])
        for arm, marker, color in (("guided", "o", "C0"), ("random", "s", "C1")):
            for k, curve in enumerate(s.curves[arm]):
                x = np.arange(1, len(curve) + 1)
                ax.plot(x, curve, marker, ls="none", alpha=0.5, color=color,
                        label=arm if k == 0 else None)  # fmt: skip
            if s.per_arm >= MIN_PER_ARM:
                rows = np.array([c[: s.per_arm] for c in s.curves[arm]])
                mean = rows.mean(axis=0)
                x = np.arange(1, s.per_arm + 1)
                ax.plot(x, mean, "-", color=color)
                if len(rows) > 1:
                    half = np.array([seed_interval(rows[:, i])[1] for i in range(s.per_arm)])
                    ax.fill_between(x, mean - half, mean + half, alpha=0.2, color=color)
        sized = "" if s.per_arm >= MIN_PER_ARM else f", {s.per_arm} per arm: points only, too few for a curve"
        ax.set_title(f"{role} model, {len(s.seeds)} search seed(s){sized}", fontsize=8)
        ax.set_xlabel("schedules trained by the search")
        ax.set_ylabel("best objective so far (mean z)")
        ax.legend(fontsize=8)
    fig.suptitle(f"Search (profile {inp.profile}): performance-model-guided vs random", fontsize=9)
    fig.tight_layout()
    return _png(fig, inp)


def fig_3(inp: Inputs) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_probe) = plt.subplots(1, 2, figsize=(10, 4))
    lines = []
    for axis, role, g, label in [
        *((ax, role, g, f"{role} model") for role, g in inp.gradnorm.items()),
        (ax_probe, PROBE, inp.probe, "smol probe"),
    ]:
        if g is None:
            lines.append(f"{role}: missing")
            continue
        y = g["layer_norms"]
        axis.plot(range(1, len(y) + 1), y, marker="o", ms=3, label=f"{label} ({len(y)} layers)")
        lines.append(f"{role}: Spearman ρ(layer, norm) = {spearman(y):+.2f}")
    ax.set_title(f"profile {inp.profile}: LMs trained from scratch", fontsize=9)
    ax_probe.set_title(f"smol: {probe_label(inp).split(' (')[0]}", fontsize=9)
    for axis in (ax, ax_probe):
        axis.set_xlabel("layer (1 = first)")
        if axis.lines:
            axis.legend(fontsize=8)
    ax.set_ylabel("average gradient norm (eq. 1)")
    fig.suptitle("Fig. 3 reproduced: average gradient norms per layer with LoRA", fontsize=10)
    claim = inp.paper["figures"]["fig_3"]["claim"]
    text = f"Paper (no numbers printed): {claim}.\nOurs: " + "; ".join(lines)
    fig.text(0.01, 0.01, text, fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _png(fig, inp)


def fig_6(inp: Inputs) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    title = f"Fig. 6 (profile {inp.profile}): {inp.paper['figures']['fig_6']['caption']}"
    curves = (inp.perfmodel or {}).get("curves") or {}
    if inp.perfmodel is None or not curves:
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            f"Placeholder: {PERFMODEL_PLACEHOLDER}.\nThe paper's Fig. 6 prints no numbers.",
            ha="center",
            va="center",
            fontsize=10,
            wrap=True,
        )
    else:
        for name, ys in curves.items():
            ax.plot(range(1, len(ys) + 1), ys, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (L2)")
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig, inp)
