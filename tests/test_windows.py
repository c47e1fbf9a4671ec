import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch.errors import (DataValueError, DTypeError, LengthMismatchError, OrderError, ParameterError,
                               ShapeError, StatebatchWarning)


def slow_windows(series, T, stride=1, sr=1, start=0, end=None):
    """Reference: windows by plain Python slicing."""
    end = len(series) if end is None else end
    out = []
    p = start
    while p + (T - 1) * sr < end:
        out.append(series[p: p + (T - 1) * sr + 1: sr])
        p += stride
    return out


def test_1d_series_gives_one_feature_view():
    x = np.arange(10.0)
    w = sb.make_windows(x, 4)
    assert w.X.shape == (7, 4, 1)
    assert np.shares_memory(w.X, x)
    assert not w.X.flags.writeable
    np.testing.assert_array_equal(w.X[3, :, 0], [3, 4, 5, 6])
    assert w.y is None
    (X,) = w.arrays()
    assert X is w.X


def test_copy_flag_gives_contiguous_writeable():
    x = np.arange(20.0).reshape(10, 2)
    w = sb.make_windows(x, 3, copy=True)
    assert w.X.flags.c_contiguous and w.X.flags.writeable
    assert not np.shares_memory(w.X, x)


def test_next_targets_many_to_one_and_horizon():
    x = np.arange(30.0).reshape(15, 2)
    X, y = sb.make_windows(x, 4, targets="next", horizon=2).arrays()
    # window i covers rows i..i+3, target is row i+3+2
    assert X.shape == (15 - 4 - 2 + 1, 4, 2)
    for i in range(len(X)):
        np.testing.assert_array_equal(y[i], x[i + 5])


def test_next_targets_n_ahead_and_target_features():
    x = np.arange(40.0).reshape(20, 2)
    X, y = sb.make_windows(x, 5, targets="next", n_ahead=3, target_features=[1]).arrays()
    assert y.shape == (20 - 5 - 3 + 1, 3, 1)
    np.testing.assert_array_equal(y[2, :, 0], x[7:10, 1])


def test_return_sequences_targets_are_shifted_windows():
    x = np.arange(12.0)
    X, y = sb.make_windows(x, 3, targets="next", return_sequences=True).arrays()
    assert y.shape == (9, 3, 1)
    np.testing.assert_array_equal(X[:, :, 0] + 1, y[:, :, 0])


def test_aligned_array_targets_last():
    x = np.arange(10.0)
    t = np.arange(10) * 10
    X, y = sb.make_windows(x, 3, targets=t, align="last").arrays()
    np.testing.assert_array_equal(y, X[:, -1, 0] * 10)


def test_many_series_never_cross_boundaries_and_provenance():
    a = np.arange(10.0)[:, None]
    b = 100 + np.arange(6.0)[:, None]
    w = sb.make_windows([a, b], 4, targets="next")
    assert w.X.shape == (6 + 2, 4, 1)
    for i in range(w.n_windows):
        src = [a, b][w.series[i]]
        np.testing.assert_array_equal(w.X[i], src[w.start[i]: w.start[i] + 4])
        np.testing.assert_array_equal(w.y[i], src[w.start[i] + 4])


def test_long_frame_with_id_and_time_columns_sorted():
    rng = np.random.default_rng(0)
    rows = []
    for sid, n in (("a", 8), ("b", 5)):
        for t in range(n):
            rows.append({"id": sid, "t": t, "v": float(t + (100 if sid == "b" else 0)), "w": -float(t)})
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=1)  # scrambled
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["v"])
    assert w.series_ids == list(pd.unique(df["id"]))
    assert w.feature_names == ["v", "w"]
    for i in range(w.n_windows):
        sid = w.series_ids[w.series[i]]
        base = 100 if sid == "b" else 0
        np.testing.assert_array_equal(w.X[i, :, 0], base + w.start[i] + np.arange(3))
        assert w.y[i, 0] == base + w.start[i] + 3
    del rng


def test_wide_frame_with_unsorted_datetime_index_raises_order_error():
    idx = pd.to_datetime(["2020-01-03", "2020-01-01", "2020-01-02"])
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=idx)
    with pytest.raises(OrderError, match="sort_index"):
        sb.make_windows(df, 2)


def test_duplicate_timestamps_raise():
    idx = pd.to_datetime(["2020-01-01", "2020-01-01", "2020-01-02"])
    with pytest.raises(OrderError, match="duplicate"):
        sb.make_windows(pd.Series([1.0, 2, 3], index=idx), 2)


def test_pandas_series_and_frame_share_memory_where_possible():
    s = pd.Series(np.arange(50.0), index=pd.date_range("2020", periods=50, freq="D"))
    w = sb.make_windows(s, 5)
    assert w.X.shape == (46, 5, 1)
    np.testing.assert_array_equal(w.X[10, :, 0], s.to_numpy()[10:15])


@pytest.mark.parametrize("bad, exc, fix", [
    (np.zeros((3, 4, 5)), ShapeError, "raw series"),
    (np.array(["a", "b", "c"]), DTypeError, "numbers"),
    (np.array([], dtype=float), DataValueError, "non-empty"),
    (np.arange(3.0), DataValueError, "fewer timesteps"),
])
def test_bad_inputs(bad, exc, fix):
    with pytest.raises(exc, match=fix):
        sb.make_windows(bad, 5)


@pytest.mark.parametrize("kw, fix", [
    ({"timesteps": 0}, "timesteps=1"),
    ({"timesteps": 3, "stride": 0}, "stride=1"),
    ({"timesteps": 2.5}, "timesteps=1"),
    ({"timesteps": 3, "start_index": 5, "end_index": 4}, "end_index > start_index"),
    ({"timesteps": 3, "targets": "later"}, "'next'"),
    ({"timesteps": 3, "align": "middle"}, "align='first'"),
])
def test_bad_parameters(kw, fix):
    with pytest.raises(ParameterError, match=fix):
        sb.make_windows(np.arange(20.0), **kw)


def test_target_length_mismatch():
    with pytest.raises(LengthMismatchError, match="trim"):
        sb.make_windows(np.arange(10.0), 3, targets=np.arange(12))


def test_left_out_reports_tail_and_short_series():
    w = sb.make_windows(np.arange(10.0), 4, stride=4)  # windows at 0, 4; steps 8, 9 unused
    assert w.left_out == [sb.LeftOut(0, 8, 2, "tail after the last full window")]
    with pytest.warns(StatebatchWarning, match="shorter than one window"):
        w2 = sb.make_windows([np.arange(10.0), np.arange(2.0)], 4)
    assert w2.left_out[0].series == 1 and w2.left_out[0].steps == 2


def test_batches_cover_every_window_once_and_are_contiguous():
    x = np.arange(200.0).reshape(100, 2)
    for shuffle in (False, True):
        w = sb.make_windows(x, 7, targets="next", batch_size=16, shuffle=shuffle, seed=3)
        seen = []
        for xb, yb in w.batches():
            assert xb.flags.c_contiguous and len(xb) == len(yb) <= 16
            seen.extend(xb[:, 0, 0].tolist())
            np.testing.assert_array_equal(yb, xb[:, -1, :] + 2)  # next row = +2 per row here
        assert sorted(seen) == sorted(w.X[:, 0, 0].tolist())
    order1 = [b[0][0, 0, 0] for b in w.batches(0)]
    order2 = [b[0][0, 0, 0] for b in w.batches(0)]
    order3 = [b[0][0, 0, 0] for b in w.batches(1)]
    assert order1 == order2 and order1 != order3  # a pure function of (seed, epoch)


def test_drop_remainder_reports():
    w = sb.make_windows(np.arange(20.0), 5, batch_size=6, remainder="drop")
    n = sum(len(b[0]) for b in w.batches())
    assert n == 12 and w.n_batches == 2
    dropped = [lo for lo in w.left_out if lo.reason.startswith("remainder='drop'")]
    assert [lo.first_step for lo in dropped] == [12, 13, 14, 15]


def test_windowing_a_large_series_allocates_no_copy():
    x = np.ones((2_000_000, 8), dtype=np.float32)  # 64 MB
    tracemalloc.start()
    try:
        w = sb.make_windows(x, 64)
        _ = w.X
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert w.X.shape == (2_000_000 - 63, 64, 8)
    assert peak < 1_000_000, peak  # well under one copy (64 MB); only the small start plan


series_strategy = st.lists(st.integers(0, 40), min_size=1, max_size=4)


@given(lengths=series_strategy, T=st.integers(1, 6), stride=st.integers(1, 4), sr=st.integers(1, 3),
       start=st.integers(0, 5), end_cut=st.integers(0, 5), nf=st.integers(1, 3))
def test_every_window_equals_its_source_slice(lengths, T, stride, sr, start, end_cut, nf):
    series = [np.arange(n * nf, dtype=float).reshape(n, nf) + 1000 * k for k, n in enumerate(lengths)]
    end = max(lengths) - end_cut if max(lengths) - end_cut > start else None
    expected = []
    for k, s in enumerate(series):
        expected += [(k, win) for win in slow_windows(s, T, stride, sr, start, end if end is None else min(end, len(s)))]
    data = series[0] if len(series) == 1 else series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatebatchWarning)
        if not expected:
            with pytest.raises(DataValueError):
                sb.make_windows(data, T, stride=stride, sampling_rate=sr, start_index=start, end_index=end)
            return
        w = sb.make_windows(data, T, stride=stride, sampling_rate=sr, start_index=start, end_index=end)
    assert w.n_windows == len(expected)
    for i, (k, win) in enumerate(expected):
        assert w.series[i] == k
        np.testing.assert_array_equal(w.X[i], win)
        s = series[k]
        np.testing.assert_array_equal(s[w.start[i]: w.start[i] + (T - 1) * sr + 1: sr], win)
    # take() materialises the same windows
    idx = np.arange(w.n_windows)[::-1]
    np.testing.assert_array_equal(w.take(idx)[0], w.X[idx])


@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=4), T=st.integers(1, 5), stride=st.integers(1, 3),
       sr=st.integers(1, 2), b=st.integers(1, 9), shuffle=st.booleans(), drop=st.booleans(),
       targets=st.sampled_from([None, "next", "seq", "ahead"]), epoch=st.integers(0, 2))
@settings(max_examples=60, deadline=None)
def test_batches_are_the_windows_of_their_plan(lengths, T, stride, sr, b, shuffle, drop, targets, epoch):
    # batches() serves in-memory epochs from a fast path (no per-batch index checks); every batch must
    # hold the windows (and targets) that its plan names, as X and y index them
    series = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 1000 * k for k, n in enumerate(lengths)]
    data = series[0] if len(series) == 1 else series
    kw = {"None": {}, "next": {"targets": "next"}, "seq": {"targets": "next", "return_sequences": True},
          "ahead": {"targets": "next", "n_ahead": 2, "horizon": 2}}[str(targets)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatebatchWarning)
        try:
            w = sb.make_windows(data, T, stride=stride, sampling_rate=sr, batch_size=b, shuffle=shuffle, seed=5,
                                remainder="drop" if drop else "keep", **kw)
        except DataValueError:  # no window fits: refused, as test_every_window_equals_its_source_slice checks
            return
    plan = w.plan(epoch)
    got = list(w.batches(epoch))
    assert len(got) == plan.n_batches
    for k, batch in enumerate(got):
        idx = np.arange(w.n_windows)[plan.batch_indices(k)]
        expected = (w.X[idx],) if w.y is None else (w.X[idx], w.y[idx])
        assert len(batch) == len(expected)
        for a, e in zip(batch, expected):
            assert a.flags.c_contiguous and a.dtype == e.dtype
            np.testing.assert_array_equal(a, e)


@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=3), T=st.integers(1, 5), stride=st.integers(1, 3),
       b=st.integers(1, 9), drop=st.booleans(), targets=st.booleans(), epochs=st.integers(1, 3))
@settings(max_examples=60, deadline=None)
def test_unshuffled_epochs_are_planned_and_iterated_as_planned_anew(lengths, T, stride, b, drop, targets, epochs):
    # later unshuffled epochs reuse the plan made at construction (WindowPlan.at_epoch) and `for batch in w`
    # reads one series' in-order batches without batches() in between: each epoch's plan must equal
    # plan_windows' for that epoch (left-out entries naming their epoch included), and its batches batches()'
    from statebatch.plans.windows import plan_windows

    data = [np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 1000 * k for k, n in enumerate(lengths)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatebatchWarning)
        try:
            w = sb.make_windows(data[0] if len(data) == 1 else data, T, stride=stride, batch_size=b,
                                remainder="drop" if drop else "keep", targets="next" if targets else None)
        except DataValueError:  # no window fits (or none left with remainder="drop")
            return
    for epoch in range(epochs + 1):
        fresh = plan_windows([len(d) for d in data], T, stride=stride, target_steps=int(targets), batch_size=b,
                             remainder="drop" if drop else "keep", epoch=epoch)
        got = w.plan(epoch)
        assert (got.epoch, got.first, got.stride, got.span, got.batch_size, got.order, got.remainder, got.lead) == \
            (fresh.epoch, fresh.first, fresh.stride, fresh.span, fresh.batch_size, None, fresh.remainder, fresh.lead)
        np.testing.assert_array_equal(got.offsets, fresh.offsets)
        np.testing.assert_array_equal(got.counts, fresh.counts)
        assert got.left_out == fresh.left_out
        assert w.epoch == epoch
        iterated, expected = list(w), list(w.batches(epoch))  # list(w): this epoch, then the next one
        assert w.epoch == epoch + 1 and len(iterated) == len(expected) == fresh.n_batches
        for a, e in zip(iterated, expected):
            assert len(a) == len(e) == 1 + targets
            for x, y in zip(a, e):
                assert x.flags.c_contiguous and x.flags.writeable == y.flags.writeable
                np.testing.assert_array_equal(x, y)


@given(seed=st.integers(0, 10**6))
@settings(max_examples=40, deadline=None)
def test_targets_stay_aligned_under_any_row_order_of_a_long_frame(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 60))
    ids = rng.integers(0, 3, n)
    t = rng.permutation(n)
    # the target of each row is a function of (id, time), so alignment is checkable from the windows
    df = pd.DataFrame({"id": ids, "t": t, "v": ids * 1000.0 + t, "y": ids * 1000.0 + t + 0.5})
    shuffled = df.sample(frac=1.0, random_state=seed % 2**32)
    for targets in (shuffled["y"], shuffled["y"].to_numpy()):
        w = sb.make_windows(shuffled, 2, id_col="id", time_col="t", feature_cols=["v"], targets=targets, gaps="accept")
        assert (np.diff(w.X[:, :, 0], axis=1) > 0).all()  # forward in time inside every window
        np.testing.assert_array_equal(w.y, w.X[:, 0, 0] + 0.5)  # the target of the window's first row


def test_windows_of_a_sorted_frame_are_gathered_from_row_major_rows():
    # a frame's columns come back column-major: windows gathered from them were non-contiguous (torch copied
    # every batch again) and about 2x slower to gather; statebatch keeps its rows row-major
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": np.repeat([0, 1, 2], 40), "t": np.tile(np.arange(40), 3),
                       "a": rng.normal(size=120).astype(np.float32), "b": rng.normal(size=120).astype(np.float32),
                       "k": rng.normal(size=120).astype(np.float32)})
    kw = dict(id_col="id", time_col="t", target_cols=["a"], batch_size=16, shuffle=True, seed=0)
    w = sb.make_windows(df, 8, feature_cols=["a", "b", "k"], **kw)
    X, y = w.batch(0)
    assert X.flags.c_contiguous and X.shape[1:] == (8, 3)
    f = sb.make_windows(df, 8, feature_cols=["a", "b"], known_cols=["k"], **kw).batch(0)
    assert f["past"].flags.c_contiguous and f["past"].shape[1:] == (8, 3)
    start = w.start[w.plan(0).batch_indices(0)]
    series = w.series[w.plan(0).batch_indices(0)]
    want = np.stack([df[df.id == s][["a", "b", "k"]].to_numpy()[st: st + 8] for s, st in zip(series, start)])
    np.testing.assert_array_equal(X, want)


def test_windows_pickle_without_copying_every_window():
    # the strided views statebatch keeps (X of one series, the batch tables, a forecast spec's views) are made
    # again after unpickling: pickled, they would be copies of every window (a DataLoader worker, a cache)
    import pickle

    series = np.random.default_rng(0).normal(size=(20_000, 4)).astype(np.float32)
    w = sb.make_windows(series, 64, targets=series[:, :1], n_ahead=1, batch_size=256, shuffle=True, seed=0)
    want = [b[0].copy() for b in w.batches(0)]
    assert w.X.shape == (w.n_windows, 64, 4) and not w.X.flags.owndata
    blob = pickle.dumps(w)
    assert len(blob) < 3 * series.nbytes  # every window would be 64x the series
    back = pickle.loads(blob)
    assert all(np.array_equal(a, b[0]) for a, b in zip(want, back.batches(0), strict=True))
    np.testing.assert_array_equal(back.X, w.X)
    df = pd.DataFrame({"id": np.repeat([0, 1], 10_000), "t": np.tile(np.arange(10_000), 2), "y": series[:, 0],
                       "k": series[:, 1]})
    f = sb.make_windows(df, 64, id_col="id", time_col="t", target_cols=["y"], known_cols=["k"], batch_size=256)
    first = f.batch(0)
    blob = pickle.dumps(f)
    assert len(blob) < 3 * series.nbytes
    again = pickle.loads(blob).batch(0)
    assert all(np.array_equal(first[k], again[k]) for k in first)
