"""Pictures of arrangements (matplotlib is imported here only).

Both plots lay out their own figure with matplotlib's constrained layout, legends outside the
axes and titles wrapped to the figure's width, so nothing is clipped at small or large sizes
(tests/test_plot.py renders each at both and checks every text lies inside the figure).
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

from .._args import percent
from ..errors import ParameterError

if TYPE_CHECKING:  # matplotlib is imported only when a plot is drawn
    from matplotlib.figure import Figure

__all__ = ["plot_lanes", "plot_buckets"]

_MAX_SERIES_LEGEND = 20  # tab20 has 20 colours: beyond that they repeat, so lanes are labelled instead
_MAX_LANE_LABELS = 32


def _figure(ax: Any, figsize: tuple[float, float]):
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax, False
    fig = plt.figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot(), True


def _font(fig: Any) -> float:
    """A font size that fits the figure: 6 points for a postcard, 10 for a poster."""
    w, h = fig.get_size_inches()
    return float(np.clip(min(w / 8.0, h / 4.0) * 9.0, 6.0, 10.0))


def _title(ax: Any, text: str, fontsize: float) -> None:
    """The title wrapped to the axes' share of the figure width (a long title is never cut off)."""
    fig = ax.figure
    width_in = fig.get_size_inches()[0] * ax.get_position().width
    chars = max(20, int(width_in * 72 / (fontsize * 0.6)))
    ax.set_title(textwrap.fill(text, chars), fontsize=fontsize)


def plot_lanes(arranged: Any, *, ax: Any = None, max_batches: int | None = 200, max_lanes: int | None = 64,
               title: str | None = None, figsize: tuple[float, float] | None = None) -> Figure:
    """Draw lanes x batches: each cell coloured by the series it holds, padding shaded, resets marked.

    A legend names the series by colour (up to 20 series; beyond that colours repeat and the lanes
    are labelled instead). White lines separate the lanes, so one series split into lanes shows
    where each lane's part begins; a lane that holds one series is labelled with its step range.

    Parameters
    ----------
    arranged : Arranged
    ax : matplotlib Axes, optional
        Draw into it (its figure's layout is left to the caller).
    max_batches, max_lanes : int, optional
        Show at most this many batches (columns) / lanes (rows).
    title : str, optional
    figsize : (width, height) in inches, optional
        Size of the new figure (default grows with the batches and lanes shown).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np, statebatch as sb
    >>> fig = plot_lanes(sb.arrange_stateful([np.arange(12.0), np.arange(7.0)], timesteps=3, batch_size=2))
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['series 0', 'series 1', 'reset (new series)', 'idle lane (weight 0)', 'padded steps']
    """
    from ..results.stateful import Arranged

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
    first = plan.step[:max_batches, :max_lanes].T
    resets = plan.resets[:max_batches, :max_lanes].T
    lanes, nb = series.shape
    t = arranged.timesteps
    ids = list(arranged.series_ids)
    if figsize is None:
        figsize = (min(4 + nb * 0.25, 16), min(2.5 + lanes * 0.3, 10))
    fig, ax, own = _figure(ax, figsize)
    fs = _font(fig)
    palette = plt.get_cmap("tab20").colors  # type: ignore[attr-defined]  # tab20 is a ListedColormap
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
    # lane boundaries: without them one series split into lanes is a single block of colour
    if lanes > 1:
        ax.hlines(np.arange(lanes - 1) + 0.5, -0.5, nb - 0.5, colors="white", linewidth=1.5, zorder=2)
    ax.set_xlim(-0.5, nb - 0.5)
    ax.set_ylim(lanes - 0.5, -0.5)
    ax.set_xlabel("batch (k)", fontsize=fs)
    ax.set_ylabel("lane = row i of every batch", fontsize=fs)
    ax.tick_params(labelsize=fs * 0.9)
    n_series = len(ids)
    if lanes <= _MAX_LANE_LABELS:
        labels = []
        for i in range(lanes):
            held = np.unique(series[i][series[i] >= 0])
            label = f"lane {i}"
            if len(held) == 1 and (n_series == 1 or n_series > _MAX_SERIES_LEGEND):
                s = int(held[0])
                cols = series[i] == s
                span = f"steps {int(first[i][cols].min())}-{int((first[i] + valid[i])[cols].max()) - 1}"
                label += f": {span}" if n_series == 1 else f": {ids[s]}, {span}"
            labels.append(label)
        ax.set_yticks(np.arange(lanes), labels)
    steps = plan.batch_steps
    size = f"{t} steps" if steps is None else f"{int(steps.min())}-{int(steps.max())} steps (jitter)"
    shown = "" if nb == plan.n_batches and lanes == plan.batch_size else f" (showing {lanes} lanes x {nb} batches)"
    _title(ax, title or (f"{n_series} series in {arranged.batch_size} lanes x {arranged.n_batches} batches of "
                         f"{size}, padding {percent(arranged.padding_fraction)}{shown}"), fs)
    handles: list[Any] = []  # patches and a line
    if n_series <= _MAX_SERIES_LEGEND:
        handles += [Patch(facecolor=palette[s % len(palette)], label=f"series {ids[s]}") for s in range(n_series)]
    else:
        handles.append(Patch(facecolor="white", edgecolor="#999999",
                             label=f"{n_series} series (colours repeat every {len(palette)})"))
    handles += [Line2D([], [], marker="|", linestyle="none", color="black", markersize=10, markeredgewidth=2,
                       label="reset (new series)"),
                Patch(facecolor="#eeeeee", label="idle lane (weight 0)"),
                Patch(facecolor="white", hatch="////", edgecolor="#999999", label="padded steps")]
    rows = max(3, int(fig.get_size_inches()[1] * 72 / (fs * 2.0)))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=fs * 0.9,
              ncol=int(np.ceil(len(handles) / rows)), borderaxespad=0.0)
    return fig


def plot_buckets(data: Any, boundaries: Any = None, *, ax: Any = None, title: str | None = None,
                 epoch: int | None = None, max_batches: int | None = 60,
                 figsize: tuple[float, float] = (9, 4)) -> Figure:
    """Draw the batches of a bucketing with their padding, or a histogram of lengths and buckets.

    Given a :class:`~statebatch.bucketing.Bucketing`, draws the batches of its plan for ``epoch``
    (whatever its mode): one bar per sequence (its real steps), with the padding up to its batch's
    padded length stacked on it (hatched), batches side by side, longest padded length first. The
    title states how many batches and sequences are drawn and the padding of exactly those.

    Given plain lengths, draws a step-weighted histogram of the lengths with bucket ``boundaries``
    (tf.data convention; computed with :func:`~statebatch.bucket_boundaries` when not given) and the
    steps padding to each bucket's longest member would add.

    Parameters
    ----------
    data : a :class:`~statebatch.bucketing.Bucketing` or a sequence of lengths
    boundaries : bucket boundaries for plain lengths (not used with a bucketing, whose plan is drawn)
    epoch : int, optional
        The bucketing's epoch to draw (default its current one).
    max_batches : int, optional
        Draw at most this many batches (the title says so).
    figsize : (width, height) in inches, for a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        A new figure, or the figure of ``ax`` when one is given.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # draw off screen
    >>> fig = plot_buckets([3, 5, 5, 9, 12, 30], boundaries=[6, 13])  # a histogram of lengths and buckets
    >>> fig.axes[0].get_xlabel()
    'sequence length'
    """
    from ..results.bucketing import Bucketing

    if isinstance(data, Bucketing):
        if boundaries is not None:
            raise ParameterError("boundaries apply to plain lengths; a bucketing is drawn as it batches.",
                                 "drop boundaries, or pass the lengths (bk.lengths) to draw a bucket histogram.")
        return _plot_plan(data, ax=ax, title=title, epoch=epoch, max_batches=max_batches, figsize=figsize)
    return _plot_histogram(data, boundaries, ax=ax, title=title, figsize=figsize)


def _plot_plan(bk: Any, *, ax: Any, title: str | None, epoch: int | None, max_batches: int | None,
               figsize: tuple[float, float]):
    from matplotlib.patches import Patch

    plan = bk.plan(epoch)
    order = np.argsort([-int(p) for p in plan.padded_lengths], kind="stable")  # a staircase, longest first
    drawn = order[:max_batches] if max_batches is not None else order
    fig, ax, own = _figure(ax, figsize)
    fs = _font(fig)
    x0, real_steps, pad_steps, n_seq = 0, 0, 0, 0
    xs, reals, pads, edges = [], [], [], []
    for k in drawn:
        idx = np.asarray(plan.batches[k])
        lengths = np.sort(plan.lengths[idx])[::-1]
        p = int(plan.padded_lengths[k])
        xs.append(x0 + np.arange(len(lengths)))
        reals.append(lengths)
        pads.append(p - lengths)
        x0 += len(lengths) + 1  # one empty slot between batches
        edges.append(x0 - 1)
        real_steps += int(lengths.sum())
        pad_steps += int((p - lengths).sum())
        n_seq += len(lengths)
    x = np.concatenate(xs) if xs else np.zeros(0)
    real = np.concatenate(reals) if reals else np.zeros(0)
    pad = np.concatenate(pads) if pads else np.zeros(0)
    ax.bar(x, real, width=1.0, color="#4c72b0", linewidth=0)
    ax.bar(x, pad, bottom=real, width=1.0, color="#dd8452", alpha=0.7, hatch="//", edgecolor="#b35d22", linewidth=0)
    for e in edges[:-1]:
        ax.axvline(e, color="#bbbbbb", linewidth=0.8)
    frac = pad_steps / (real_steps + pad_steps) if real_steps + pad_steps else 0.0
    ax.set_xlim(-1, max(x0 - 1, 1))
    ax.set_xticks([])
    ax.set_xlabel("sequences, grouped by batch (batches sorted by padded length)", fontsize=fs)
    ax.set_ylabel("time steps", fontsize=fs)
    ax.tick_params(labelsize=fs * 0.9)
    mode = getattr(bk, "mode", "")
    part = (f"{len(drawn)} batches" if len(drawn) == plan.n_batches else
            f"{len(drawn)} of {plan.n_batches} batches")
    text = (f"{part} ({n_seq} of {len(plan.lengths)} sequences), mode={mode!s}, epoch {plan.epoch}: padding "
            f"{percent(frac)} of the steps drawn")
    if len(drawn) != plan.n_batches:
        text += f" ({percent(plan.padding_fraction)} over all batches)"
    _title(ax, title or text, fs)
    ax.legend(handles=[Patch(facecolor="#4c72b0", label="real steps"),
                       Patch(facecolor="#dd8452", alpha=0.7, hatch="//", edgecolor="#b35d22",
                             label="padding (to the batch's length)")],
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=fs * 0.9, borderaxespad=0.0)
    return fig


def _plot_histogram(data: Any, boundaries: Any, *, ax: Any, title: str | None, figsize: tuple[float, float]):
    from ..results.bucketing import bucket_boundaries, padding_of

    raw = getattr(data, "lengths", data)
    if isinstance(raw, (list, tuple)) and any(np.ndim(s) >= 1 or hasattr(s, "__len__") for s in raw):
        # sequences, not lengths (numpy would refuse ragged ones with its "inhomogeneous shape")
        raise ParameterError(f"plot_buckets got a {type(raw).__name__} of {len(raw)} sequences; it draws lengths or "
                             "a bucketing's batches.",
                             "pass [len(s) for s in sequences], or statebatch.bucket_batches(sequences, batch_size) "
                             "to see its batches.")
    lengths = np.asarray(raw)
    if lengths.dtype.kind not in "iu" or lengths.ndim != 1:
        raise ParameterError(f"plot_buckets needs a Bucketing or a 1-D sequence of integer lengths, got "
                             f"{type(data).__name__} of dtype {lengths.dtype} and shape {lengths.shape}.",
                             "pass statebatch.bucket_batches(...) or [len(s) for s in sequences].")
    if boundaries is None:
        boundaries = bucket_boundaries(lengths)
    else:
        b = np.asarray(boundaries) if not isinstance(boundaries, (list, tuple)) or all(
            np.ndim(v) == 0 for v in boundaries) else np.asarray([], dtype=object)
        if b.ndim != 1 or b.dtype.kind not in "iu" or (np.diff(b) <= 0).any() or (b < 1).any():
            raise ParameterError(f"boundaries must be increasing positive integer lengths (tf.data's "
                                 f"bucket_boundaries), got {boundaries!r}.",
                                 "pass e.g. boundaries=[10, 20, 40], or leave it out to compute them.")
    boundaries = np.asarray(boundaries, dtype=np.int64)
    fig, ax, own = _figure(ax, figsize)
    fs = _font(fig)
    values, counts = np.unique(lengths, return_counts=True)
    bucket = np.searchsorted(boundaries, values, side="right")
    top = np.zeros(len(boundaries) + 1, dtype=np.int64)
    np.maximum.at(top, bucket, values)
    real = counts * values  # steps of real data at each length
    padded = counts * (top[bucket] - values)  # steps added to pad them to their bucket's longest member
    ax.bar(values, real, width=1.0, color="#4c72b0", label="real steps")
    ax.bar(values, padded, bottom=real, width=1.0, color="#dd8452", alpha=0.6, hatch="//", edgecolor="#dd8452",
           label="padding (to bucket maximum)")
    for b in boundaries:
        ax.axvline(b - 0.5, color="black", linestyle="--", linewidth=1)
    pad = padding_of(lengths, boundaries)
    frac = pad / (lengths.sum() + pad) if lengths.sum() + pad else 0.0
    ax.set_xlabel("sequence length", fontsize=fs)
    ax.set_ylabel("time steps (sequences x length)", fontsize=fs)
    ax.tick_params(labelsize=fs * 0.9)
    _title(ax, title or f"{len(lengths)} sequences in {len(boundaries) + 1} buckets; padding to bucket "
                        f"maximum: {percent(frac)} of steps (lengths only; pass a bucketing to see its batches)", fs)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=fs * 0.9, borderaxespad=0.0)
    return fig
