"""Pictures of arrangements (matplotlib is imported here only)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ParameterError


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
    from .stateful import Arranged

    if not isinstance(arranged, Arranged):
        raise ParameterError(f"plot_lanes draws an arrangement, got {type(arranged).__name__}.",
                             "pass the result of statebatch.arrange_stateful(...).")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plan = arranged.plan()
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
    steps = plan.batch_steps
    size = f"{t} steps" if steps is None else f"{int(steps.min())}-{int(steps.max())} steps (jitter)"
    ax.set_title(title or (f"{len(arranged.series_ids)} series in {arranged.batch_size} lanes x "
                           f"{arranged.n_batches} batches of {size}, padding {arranged.padding_fraction:.1%}"))
    ax.legend(handles=[Line2D([], [], marker="|", linestyle="none", color="black", markersize=10,
                              markeredgewidth=2, label="reset (new series)"),
                       Patch(facecolor="#eeeeee", label="idle lane (weight 0)"),
                       Patch(facecolor="white", hatch="////", edgecolor="#999999", label="padded steps")],
              loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_buckets(data: Any, boundaries: Any = None, *, ax: Any = None, title: str | None = None):
    """Step-weighted histogram of sequence lengths with bucket boundaries and the padding shaded.

    Each bar is the number of real steps at that length; stacked on it (hatched) are the steps added
    to pad those sequences to their bucket's longest member.

    Parameters
    ----------
    data : a :class:`~statebatch.bucketing.Bucketing` or a sequence of lengths
    boundaries : bucket boundaries (tf.data convention); taken from a bucketing in ``"buckets"`` mode,
        else computed with :func:`~statebatch.bucket_boundaries`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from .bucketing import bucket_boundaries, padding_of

    lengths = np.asarray(getattr(data, "lengths", data))
    if boundaries is None:
        boundaries = getattr(data, "boundaries", None)
        if boundaries is None:
            boundaries = bucket_boundaries(lengths)
    boundaries = np.asarray(boundaries, dtype=np.int64)
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 3.5))
    else:
        fig = ax.figure
    values, counts = np.unique(lengths, return_counts=True)
    bucket = np.searchsorted(boundaries, values, side="right")
    top = np.zeros(len(boundaries) + 1, dtype=np.int64)
    np.maximum.at(top, bucket, values)
    real = counts * values  # steps of real data at each length
    padded = counts * (top[bucket] - values)  # steps added to pad them to their bucket's longest member
    ax.bar(values, real, width=1.0, color="#4c72b0", label="real steps")
    ax.bar(values, padded, bottom=real, width=1.0, color="#dd8452", alpha=0.6, hatch="//", edgecolor="#dd8452",
           label="padding (to bucket maximum)")
    for x in boundaries:
        ax.axvline(x - 0.5, color="black", linestyle="--", linewidth=1)
    pad = padding_of(lengths, boundaries)
    frac = pad / (lengths.sum() + pad) if len(lengths) else 0.0
    ax.set_xlabel("sequence length")
    ax.set_ylabel("time steps (sequences x length)")
    ax.set_title(title or f"{len(lengths)} sequences in {len(boundaries) + 1} buckets; padding to bucket "
                          f"maximum: {frac:.1%} of steps")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig
