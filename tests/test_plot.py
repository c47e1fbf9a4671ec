"""The plots at small and large sizes: legends, titles, lane boundaries, and nothing outside the figure.

Set STATEBATCH_PNG_DIR to keep the PNGs for a look.
"""

import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import statebatch as sb  # noqa: E402

SIZES = {"small": (4.5, 3.0), "large": (16.0, 9.0)}


def _save(fig, tmp_path, name):
    out = pathlib.Path(os.environ.get("STATEBATCH_PNG_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"{name}.png", dpi=80)
    assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def _texts_inside(fig):
    """Every drawn text (title, labels, legend, tick labels) lies inside the figure, by renderer extents.

    Tick labels matplotlib keeps beyond the axis limits are not drawn; the figure's tight bbox (which
    counts only what is drawn) covers them, the other texts are checked one by one."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    outside = []
    ticks = {id(t) for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
    for text in fig.findobj(matplotlib.text.Text):
        if id(text) in ticks or not text.get_visible() or not text.get_text().strip():
            continue
        e = text.get_window_extent(renderer)
        if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1:
            outside.append((text.get_text(), tuple(np.round(e.extents))))
    tight = fig.get_tightbbox(renderer)  # inches, drawn artists only (tick labels included)
    w, h = fig.get_size_inches()
    if tight.x0 < -0.02 or tight.y0 < -0.02 or tight.x1 > w + 0.02 or tight.y1 > h + 0.02:
        outside.append(("figure tight bbox", tuple(np.round(tight.extents, 2))))
    return outside


def _overlaps(fig, a, b):
    r = fig.canvas.get_renderer()
    return a.get_window_extent(r).overlaps(b.get_window_extent(r))


@pytest.mark.parametrize("size", list(SIZES))
def test_plot_lanes_many_series_legend_and_no_clipping(size, tmp_path):
    rng = np.random.default_rng(0)
    ids = ["north", "south", "east", "west", "centre"]
    import pandas as pd

    sizes = (30, 12, 55, 7, 41)
    long = pd.DataFrame({"id": np.repeat(ids, sizes), "v": rng.normal(size=sum(sizes))})
    a = sb.arrange_stateful(long, 5, 3, id_col="id")
    fig = sb.plot_lanes(a, figsize=SIZES[size])
    _save(fig, tmp_path, f"lanes_5series_{size}")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert [f"series {k}" for k in ids] == legend[:5] and "reset (new series)" in legend
    assert "5 series in 3 lanes" in ax.get_title().replace("\n", " ")
    assert ax.get_xlabel() == "batch (k)"
    assert len(ax.collections[0].get_offsets()) == int(a.resets.sum())
    assert _texts_inside(fig) == []
    assert not _overlaps(fig, ax.get_legend(), ax.xaxis.label)  # "batch (k)" is not under the legend
    plt.close(fig)


@pytest.mark.parametrize("size", list(SIZES))
def test_plot_lanes_one_series_shows_lane_boundaries(size, tmp_path):
    a = sb.arrange_stateful(np.arange(400.0)[:, None], 10, 4)
    fig = sb.plot_lanes(a, figsize=SIZES[size])
    _save(fig, tmp_path, f"lanes_1series_{size}")
    ax = fig.axes[0]
    # white separators between the 4 lanes, and each lane labelled with its part of the series
    seps = [c for c in ax.collections if isinstance(c, matplotlib.collections.LineCollection)]
    assert len(seps) == 1 and len(seps[0].get_segments()) == 3
    labels = [t.get_text() for t in ax.get_yticklabels()]
    plan = a.plan()
    expected = [f"lane {i}: steps {plan.step[:, i].min()}-{(plan.step[:, i] + plan.valid[:, i]).max() - 1}"
                for i in range(4)]
    assert labels == expected and labels[0] == "lane 0: steps 0-99"  # 399 steps with a next one: ~100 per lane
    assert _texts_inside(fig) == []
    plt.close(fig)


def test_plot_lanes_too_many_series_labels_lanes(tmp_path):
    rng = np.random.default_rng(1)
    a = sb.arrange_stateful([rng.normal(size=(int(n), 1)) for n in rng.integers(20, 60, 30)], 5, 6)
    fig = sb.plot_lanes(a, figsize=SIZES["small"])
    _save(fig, tmp_path, "lanes_30series_small")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[0] == "30 series (colours repeat every 20)" and not any(t.startswith("series ") for t in legend)
    assert [t.get_text().split(":")[0] for t in ax.get_yticklabels()] == [f"lane {i}" for i in range(6)]
    assert _texts_inside(fig) == []
    plt.close(fig)


def _independent_padding(plan, drawn):
    real = sum(int(plan.lengths[plan.batches[k]].sum()) for k in drawn)
    total = sum(int(plan.padded_lengths[k]) * len(plan.batches[k]) for k in drawn)
    return 1 - real / total


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("mode", ["sort", "pool", "buckets"])
def test_plot_buckets_draws_the_given_batches(mode, size, tmp_path):
    rng = np.random.default_rng(2)
    lengths = np.minimum(rng.pareto(1.5, 300) * 20 + 5, 400).astype(int)  # long-tailed
    seqs = [np.zeros((int(n), 1), np.float32) for n in lengths]
    bk = sb.bucket_batches(seqs, 16, mode=mode, seed=0)
    fig = sb.plot_buckets(bk, figsize=SIZES[size])
    _save(fig, tmp_path, f"buckets_{mode}_{size}")
    ax = fig.axes[0]
    plan = bk.plan()
    title = ax.get_title().replace("\n", " ")
    assert f"{plan.n_batches} batches (300 of 300 sequences), mode={mode}" in title
    assert f"padding {_independent_padding(plan, range(plan.n_batches)):.2%}" in title
    real, pad = ax.containers
    # the bars are the batches' sequences: real steps and padding to the batch's padded length
    assert sorted(int(p.get_height()) for p in real) == sorted(lengths.tolist())
    assert sum(p.get_height() for p in pad) == sum(
        int(plan.padded_lengths[k]) * len(b) - int(plan.lengths[b].sum()) for k, b in enumerate(plan.batches))
    assert _texts_inside(fig) == []
    plt.close(fig)


def test_plot_buckets_modes_differ_and_truncation_is_stated(tmp_path):
    rng = np.random.default_rng(3)
    seqs = [np.zeros((int(n), 1), np.float32) for n in rng.integers(5, 200, 400)]
    titles = set()
    for mode in ("pool", "buckets"):
        fig = sb.plot_buckets(sb.bucket_batches(seqs, 8, mode=mode, seed=0))
        titles.add(fig.axes[0].get_title())
        plt.close(fig)
    assert len(titles) == 2  # two bucketings, two pictures (they used to be the same)
    bk = sb.bucket_batches(seqs, 8, seed=0)
    fig = sb.plot_buckets(bk, max_batches=10)
    title = fig.axes[0].get_title().replace("\n", " ")
    plan = bk.plan()
    drawn = np.argsort(-plan.padded_lengths, kind="stable")[:10]
    assert f"10 of {plan.n_batches} batches" in title
    assert f"padding {_independent_padding(plan, drawn):.2%} of the steps drawn" in title
    assert f"({plan.padding_fraction:.2%} over all batches)" in title
    plt.close(fig)
    with pytest.raises(sb.ParameterError, match="boundaries"):
        sb.plot_buckets(bk, [10, 20])


@pytest.mark.parametrize("size", list(SIZES))
def test_plot_buckets_histogram_of_lengths(size, tmp_path):
    lengths = np.random.default_rng(0).integers(7, 30, size=200)
    fig = sb.plot_buckets(lengths, sb.bucket_boundaries(lengths, 3), figsize=SIZES[size])
    _save(fig, tmp_path, f"buckets_hist_{size}")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and "200 sequences in 3 buckets" in ax.get_title().replace("\n", " ")
    assert _texts_inside(fig) == []
    plt.close(fig)
