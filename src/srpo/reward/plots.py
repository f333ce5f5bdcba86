"""The figure of `srpo reward-eval`: progress curves and score histograms per encoder (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from srpo.reward.labelled import LabelledSet
from srpo.reward.quality import JS_BINS, EncoderReport


def plot_reports(reports: Sequence[EncoderReport], data: LabelledSet, path: str | Path) -> Path:
    """One row per encoder: progress curves over normalised time (successes vs failures, thin lines and means)
    and histograms of the whole-trajectory scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(reports), 2, figsize=(10, 3.2 * len(reports)), squeeze=False)
    for row, r in enumerate(reports):
        ax_curve, ax_hist = axes[row]
        t = np.arange(1, r.curves.shape[1] + 1) / r.curves.shape[1]
        finite = r.scores[np.isfinite(r.scores)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, JS_BINS + 1)  # shared, as in the JS metric
        for label, mask, colour in (("success", data.success, "tab:green"), ("failure", ~data.success, "tab:red")):
            curves = r.curves[mask & np.isfinite(r.curves).all(axis=1)]
            for c in curves:
                ax_curve.plot(t, c, color=colour, alpha=0.15, linewidth=0.8)
            if len(curves):
                ax_curve.plot(t, curves.mean(axis=0), color=colour, linewidth=2.5, label=f"{label} (n={len(curves)})")
            scores = r.scores[mask & np.isfinite(r.scores)]
            if scores.size:
                ax_hist.hist(scores, bins=bins, alpha=0.6, color=colour, label=label)
        m = r.metrics
        ax_curve.set_title(f"{r.name}: prefix progress (SC {m['sc']:.2f}, Mono {m['mono']:.2f})", fontsize=10)
        ax_curve.set_xlabel("normalised time (prefix length / T)")
        ax_curve.set_ylabel("progress score")
        ax_curve.legend(fontsize=8)
        ax_hist.set_title(f"{r.name}: trajectory scores (SMD {m['smd']:.2f}, JS {m['js']:.2f})", fontsize=10)
        ax_hist.set_xlabel("progress score")
        ax_hist.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
