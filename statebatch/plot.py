"""Pictures of arrangements (matplotlib is imported here only)."""

from __future__ import annotations

from typing import Any

import numpy as np


def plot_lanes(arranged: Any, *, ax: Any = None, max_batches: int | None = 200, max_lanes: int | None = 64,
               title: str | None = None):
    """Draw lanes x batches: each cell coloured by the series it holds, padding shaded, resets marked.

    Parameters
    ----------
    arranged : Arranged
    ax : matplotlib Axes, optional
    max_batches, max_lanes : int, optional
        Show at most this many batches (columns) / lanes (rows).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plan = arranged.plan
    series = plan.series[:max_batches, :max_lanes].T  # lanes as rows
    valid = plan.valid[:max_batches, :max_lanes].T
    resets = plan.resets[:max_batches, :max_lanes].T
    lanes, nb = series.shape
    t = arranged.timesteps
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(2 + nb * 0.25, 16), min(1.5 + lanes * 0.3, 10)))
    else:
        fig = ax.figure
    palette = plt.get_cmap("tab20").colors
    cmap = ListedColormap(palette)
    img = np.ma.masked_where(series < 0, series % len(palette))
    ax.imshow(img, aspect="auto", cmap=cmap, vmin=0, vmax=len(palette) - 1, interpolation="nearest",
              extent=(-0.5, nb - 0.5, lanes - 0.5, -0.5))
    ax.set_facecolor("#eeeeee")  # idle slots: fully padded
    # shade the padded part of partly filled chunks
    for i, k in zip(*np.nonzero((valid > 0) & (valid < t))):
        frac = valid[i, k] / t
        ax.add_patch(plt.Rectangle((k - 0.5 + frac, i - 0.5), 1 - frac, 1, facecolor="white", alpha=0.8,
                                   hatch="////", edgecolor="#999999", linewidth=0))
    ri, rk = np.nonzero(resets)
    ax.scatter(rk - 0.5, ri, marker="|", s=120, color="black", linewidths=2, zorder=3)
    ax.set_xlabel("batch (k)")
    ax.set_ylabel("lane = row i of every batch")
    ax.set_title(title or (f"{len(arranged.series_ids)} series in {arranged.batch_size} lanes x "
                           f"{arranged.n_batches} batches of {t} steps, padding {arranged.padding_fraction:.1%}"))
    ax.legend(handles=[Line2D([], [], marker="|", linestyle="none", color="black", markersize=10,
                              markeredgewidth=2, label="reset (new series)"),
                       Patch(facecolor="#eeeeee", label="idle lane (weight 0)"),
                       Patch(facecolor="white", hatch="////", edgecolor="#999999", label="padded steps")],
              loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
