"""Backtest plot: the P10-P90 band and P50 against the actual load (PNG, matplotlib Agg)."""

from __future__ import annotations

import io

import pandas as pd


def plot_backtest(forecasts: pd.DataFrame, title: str = "", tz: str = "UTC",
                  zoom_days: int = 7) -> bytes:
    """PNG bytes: the whole test period on top, its last ``zoom_days`` days below.

    ``forecasts`` has valid_time, actual_mw, p10_mw, p50_mw, p90_mw (and optionally
    persistence_mw); times are drawn in the local zone ``tz``.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    f = forecasts.sort_values("valid_time")
    t = pd.DatetimeIndex(f["valid_time"]).tz_convert(tz).tz_localize(None)
    end = t.max()
    fig, axes = plt.subplots(2, 1, figsize=(14, 8), constrained_layout=True)
    for ax, zoom in zip(axes, (False, True), strict=True):
        m = (t > end - pd.Timedelta(days=zoom_days)) if zoom else slice(None)
        tt = t[m]
        ax.fill_between(tt, f["p10_mw"].to_numpy()[m], f["p90_mw"].to_numpy()[m], step=None,
                        color="tab:blue", alpha=0.25, lw=0, label="P10-P90")
        ax.plot(tt, f["p50_mw"].to_numpy()[m], color="tab:blue", lw=1, label="P50")
        ax.plot(tt, f["actual_mw"].to_numpy()[m], color="black", lw=0.8, label="actual")
        if zoom and "persistence_mw" in f:
            ax.plot(tt, f["persistence_mw"].to_numpy()[m], color="tab:gray", lw=0.7, ls=":",
                    label="same time last week")
        ax.set_ylabel("MW")
        ax.grid(alpha=0.3)
        ax.set_title(f"last {zoom_days} days" if zoom else title, fontsize=10)
        ax.legend(loc="upper left", fontsize=8, ncol=4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def plot_explain(wide: pd.DataFrame, title: str = "", tz: str = "UTC") -> bytes:
    """PNG bytes: per valid time the contribution of each group (stacked bars, positive above
    and negative below zero, ``base`` left out of the stack) and P50 (their sum, a line)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    t = pd.DatetimeIndex(wide.index).tz_convert(tz).tz_localize(None)
    width = (t[1] - t[0]) * 0.8 if len(t) > 1 else pd.Timedelta(minutes=24)
    fig, ax = plt.subplots(figsize=(14, 6), constrained_layout=True)
    pos, neg = np.zeros(len(t)), np.zeros(len(t))
    base = wide["base"].to_numpy() if "base" in wide else np.zeros(len(t))
    colors = plt.get_cmap("tab20").colors
    for k, g in enumerate(c for c in wide.columns if c != "base"):
        v = np.nan_to_num(wide[g].to_numpy(dtype=float))
        bottom = np.where(v >= 0, pos, neg)
        ax.bar(t, v, width=width, bottom=bottom, color=colors[k % len(colors)], label=g)
        pos, neg = pos + np.clip(v, 0, None), neg + np.clip(v, None, 0)
    ax.plot(t, wide.sum(axis=1).to_numpy() - base, color="black", lw=1.2,
            label=f"P50 - base ({float(np.mean(base)):.4g} MW)")
    ax.axhline(0, color="gray", lw=0.6)
    ax.set_ylabel("MW")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncol=6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()
