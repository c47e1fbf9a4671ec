"""Every array statebatch returns that shares memory with the user's data is read-only: writing to it
fails instead of silently rewriting the user's series."""

import numpy as np
import pytest

import statebatch as sb
from statebatch.keras import StatefulDataset, WindowDataset
from statebatch.sklearn import WindowTransformer


def _arrays(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _arrays(item)


def _returned(x, y):
    w = sb.make_windows(x, 5, targets=y, batch_size=8, shuffle=False)
    yield "Windows.X/y", (w.X, w.y)
    yield "Windows.arrays()", w.arrays()
    yield "Windows.batch(0)", w.batch(0)
    yield "Windows.take(slice)", w.take(slice(0, 10))
    yield "Windows.take(ints)", w.take([1, 2])
    yield "iter(Windows)", next(iter(w))
    yield "WindowDataset[0]", WindowDataset(w)[0]
    nxt = sb.make_windows(x, 5, targets="next", batch_size=8)
    yield "Windows next X/y", (nxt.X, nxt.y, nxt.batch(0))
    for T, B, remainder in ((5, 1, "drop"), (5, 4, "drop"), (5, 1, "pad"), (10, 2, "pad")):
        for targets in ("next", y):
            a = sb.arrange_stateful(x, T, B, targets=targets, tail=remainder)
            yield f"Arranged {T},{B},{remainder}", (a.X, a.y, a.batch_view, a.batch(0), a.sample_weight)
    yield "StatefulDataset[0]", StatefulDataset(sb.arrange_stateful(x, 5, 2, targets="next", tail="drop"))[0]
    bk = sb.bucket_batches([x[:10], x[10:30], x[30:33]], 2, seed=0)
    yield "Bucketing.batch(0)", bk.batch(0)
    yield "WindowTransformer", WindowTransformer(5).fit_transform(x)
    yield "strided_windows", sb.strided_windows(x, 5)


def test_shared_arrays_are_read_only():
    x = np.arange(200.0).reshape(100, 2)
    y = np.arange(100.0)
    before_x, before_y = x.copy(), y.copy()
    shared = 0
    for name, out in _returned(x, y):
        for arr in _arrays(out):
            if np.shares_memory(arr, x) or np.shares_memory(arr, y):
                shared += 1
                assert not arr.flags.writeable, name
                with pytest.raises(ValueError, match="read-only"):
                    arr[...] = -1
                with pytest.raises(ValueError, match="read-only"):
                    arr -= 50
    assert shared >= 10  # the zero-copy paths really are exercised
    np.testing.assert_array_equal(x, before_x)
    np.testing.assert_array_equal(y, before_y)


def test_copies_are_writeable_and_independent():
    x = np.arange(200.0).reshape(100, 2)
    w = sb.make_windows(x, 5, copy=True)
    assert w.X.flags.writeable and not np.shares_memory(w.X, x)
    w.X[...] = 0
    assert x[1, 0] == 2.0


def test_many_series_never_hand_out_writable_views():
    """Many in-memory series are kept as given (copied from, never written); what is handed out is read-only,
    and batches served from the packed lanes are the arrangement's own read-only arrays."""
    series = [np.arange(40.0).reshape(20, 2), np.arange(60.0).reshape(30, 2)]
    before = [s.copy() for s in series]
    src = sb.sources.series.as_series(series).source
    assert all(not p.flags.writeable for p in src.pieces)
    assert not src.read(0, 5).flags.writeable and not src.read(22, 30).flags.writeable
    for B in (1, 2):
        a = sb.arrange_stateful(series, 4, B)
        (lanes,) = [v for (_, which), v in a._lanes.items() if which == "x"]  # packed when arranged
        assert not lanes.flags.writeable
        served = list(_arrays((a.batch(0), a._block(0, 2))))
        if B == 1:  # one lane: batch 0 is a slice of the packed lane, no copy
            assert np.shares_memory(served[0], lanes)
        for arr in served + list(_arrays(a.arrays())):
            if np.shares_memory(arr, lanes) or any(np.shares_memory(arr, s) for s in series):
                assert not arr.flags.writeable
    assert all(s.flags.writeable for s in series)  # the user's arrays are left as they were
    for s, b in zip(series, before):
        np.testing.assert_array_equal(s, b)
