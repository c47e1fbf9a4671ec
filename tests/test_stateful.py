"""Plan and materialisation properties of the stateful arranger (no Keras needed)."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import statebatch as sb
from statebatch.errors import LengthMismatchError, ParameterError, RemainderError, ShapeError


def make_series(lengths, nf=2):
    # every value encodes (series, step, feature) so misplaced data cannot go unnoticed
    return [np.stack([1000 * k + np.arange(n) + 0.1 * f for f in range(nf)], axis=1) for k, n in enumerate(lengths)]


def check_plan(a, series, T, horizon_used):
    """The invariants every arrangement must satisfy."""
    p = a.plan
    nb, B = p.series.shape
    usable = [max(len(s) - horizon_used, 0) for s in series]
    # 1. every real timestep appears exactly once
    seen = {}
    for k in range(nb):
        for i in range(B):
            s = p.series[k, i]
            if s < 0:
                assert p.valid[k, i] == 0
                continue
            for t in range(p.step[k, i], p.step[k, i] + p.valid[k, i]):
                seen[(s, t)] = seen.get((s, t), 0) + 1
    expected = {(s, t) for s, u in enumerate(usable) for t in range(u)}
    assert set(seen) == expected and all(c == 1 for c in seen.values())
    # 2. row i of batch k+1 starts where row i of batch k ended, except at recorded resets
    for k in range(1, nb):
        for i in range(B):
            if p.series[k, i] < 0:
                continue
            if p.resets[k, i]:
                assert p.step[k, i] == 0 and (p.series[k - 1, i] != p.series[k, i] or p.series[k - 1, i] < 0)
            else:
                assert p.series[k - 1, i] == p.series[k, i]
                assert p.step[k, i] == p.step[k - 1, i] + T and p.valid[k - 1, i] == T
    # 3. X holds the data the plan says, padding carries weight 0
    X = a.X.reshape(nb, B, T, -1)
    w = a.sample_weight.reshape(nb, B, T) if a.return_sequences else None
    for k in range(nb):
        for i in range(B):
            s, st0, v = p.series[k, i], p.step[k, i], p.valid[k, i]
            if v:
                np.testing.assert_array_equal(X[k, i, :v], series[s][st0: st0 + v])
            assert np.all(X[k, i, v:] == a.pad_value)
            if w is not None:
                assert np.all(w[k, i, :v] == 1) and np.all(w[k, i, v:] == 0)


@given(lengths=st.lists(st.integers(0, 60), min_size=1, max_size=8), T=st.integers(1, 7), B=st.integers(1, 5))
def test_many_series_plan_invariants(lengths, T, B):
    series = make_series(lengths)
    if sum(lengths) == 0 or all(n <= 1 for n in lengths):
        with pytest.raises((ShapeError, sb.DataValueError)):
            sb.arrange_stateful(series if len(series) > 1 else series[0], T, B)
        return
    data = series if len(series) > 1 else series[0]
    a = sb.arrange_stateful(data, T, B)
    check_plan(a, series, T, horizon_used=1)
    # targets: the next value of the same series, step by step
    y = a.y.reshape(a.n_batches, B, T, -1)
    p = a.plan
    for k in range(a.n_batches):
        for i in range(B):
            s, st0, v = p.series[k, i], p.step[k, i], p.valid[k, i]
            if v:
                np.testing.assert_array_equal(y[k, i, :v], series[s][st0 + 1: st0 + 1 + v])
    # number of batches: at least the lower bound, LPT never worse than lower bound + longest series
    chunks = [-(-max(n - 1, 0) // T) for n in lengths]
    bound = -(-sum(chunks) // B)
    if len(series) > 1:  # a series stays in one lane
        assert max(bound, max(chunks)) <= a.n_batches <= bound + max(chunks)
    else:  # one series is split over all lanes
        assert a.n_batches == bound


@given(n=st.integers(2, 400), T=st.integers(1, 9), B=st.integers(1, 6), targets=st.sampled_from(["next", None]))
def test_single_series_lanes_are_contiguous(n, T, B, targets):
    series = make_series([n])
    h = 1 if targets == "next" else 0
    try:
        a = sb.arrange_stateful(series[0], T, B, targets=targets)
    except ShapeError:
        assert n - h < 1
        return
    check_plan(a, series, T, horizon_used=h)
    lane_len = a.plan.valid.sum(axis=0)
    lane_chunks = (a.plan.valid > 0).sum(axis=0)
    assert lane_chunks.max() - lane_chunks.min() <= 1  # balanced within one chunk
    # lanes are consecutive pieces of the series: lane i+1 starts where lane i ends
    starts = a.plan.step[0]
    for i in range(B - 1):
        if lane_len[i + 1]:
            assert starts[i + 1] == starts[i] + lane_len[i]


def test_one_series_drop_is_a_zero_copy_view_and_reports():
    x = np.arange(1003.0 * 2).reshape(1003, 2)
    a = sb.arrange_stateful(x, 10, 4, targets=None, remainder="drop")
    assert np.shares_memory(a.batches, x) and not a.batches.flags.writeable
    assert a.batches.shape == (25, 4, 10, 2)
    assert sum(d["steps"] for d in a.left_out) == 3
    np.testing.assert_array_equal(a.X, a.batches.reshape(100, 10, 2))
    # row i of batch k+1 continues row i of batch k
    np.testing.assert_array_equal(a.batches[1, :, 0], a.batches[0, :, -1] + 2)


def test_remainder_policies():
    x = np.arange(105.0)
    with pytest.raises(RemainderError, match="remainder='pad'"):
        sb.arrange_stateful(x, 10, 2, remainder="error")
    d = sb.arrange_stateful(x, 10, 2, remainder="drop")
    assert {r["reason"].split(":")[0] for r in d.left_out} == {"remainder='drop'"}
    assert sum(r["steps"] for r in d.left_out) + d.plan.valid.sum() == 104  # 105 minus the horizon
    with pytest.raises(ParameterError, match="remainder"):
        sb.arrange_stateful(x, 10, 2, remainder="truncate")
    many = [np.arange(23.0), np.arange(31.0)]
    d = sb.arrange_stateful(many, 5, 2, remainder="drop", targets=None)
    assert [(r["series"], r["steps"]) for r in d.left_out] == [(0, 3), (1, 1)]


def test_many_to_one_targets_and_weights():
    s = [np.arange(23.0), 100 + np.arange(11.0)]
    a = sb.arrange_stateful(s, 5, 2, return_sequences=False)
    X, y, w = a.X, a.y, a.sample_weight
    assert y.shape == (len(X), 1) and w.shape == (len(X),)
    full = np.flatnonzero(w == 1)
    np.testing.assert_array_equal(y[full, 0], X[full, -1, 0] + 1)
    assert np.all(w[a.plan.valid.reshape(-1) < 5] == 0)


def test_aligned_target_arrays_and_length_check():
    s = [np.arange(20.0), np.arange(13.0)]
    t = [x * 10 for x in s]
    a = sb.arrange_stateful(s, 4, 2, targets=t)
    mask = a.sample_weight.astype(bool)
    np.testing.assert_array_equal(a.y[..., 0][mask], a.X[..., 0][mask] * 10)
    with pytest.raises(LengthMismatchError, match="one target array per series"):
        sb.arrange_stateful(s, 4, 2, targets=[t[0], t[1][:-1]])


def test_long_frame_with_ids():
    df = pd.DataFrame({"id": ["a"] * 12 + ["b"] * 7, "t": list(range(12)) + list(range(7)),
                       "v": np.r_[np.arange(12.0), 50 + np.arange(7.0)]}).sample(frac=1, random_state=0)
    a = sb.arrange_stateful(df, 3, 2, id_col="id", time_col="t", targets=None)
    out = a.unarrange(a.X, as_dict=True)
    np.testing.assert_array_equal(out["a"][:, 0], np.arange(12.0))
    np.testing.assert_array_equal(out["b"][:, 0], 50 + np.arange(7.0))


@given(lengths=st.lists(st.integers(2, 50), min_size=1, max_size=6), T=st.integers(1, 6), B=st.integers(1, 4))
def test_unarrange_roundtrip(lengths, T, B):
    series = make_series(lengths, nf=1)
    a = sb.arrange_stateful(series if len(series) > 1 else series[0], T, B)
    back = a.unarrange(a.X)
    for s, b in zip(series, back):
        np.testing.assert_array_equal(b, s[:-1])  # every input step except the last (it is only a target)
    per_chunk = a.unarrange(a.X[:, -1, :])  # one output per chunk
    assert sum(len(p) for p in per_chunk) == int((a.plan.valid > 0).sum())


def test_split_keeps_lanes_continuous():
    x = np.arange(1000.0)
    a = sb.arrange_stateful(x, 10, 4)
    train, val = a.split(0.2)
    assert train.n_batches + val.n_batches == a.n_batches and val.continues and not train.continues
    np.testing.assert_array_equal(val.batch(0)[0][:, 0, 0], train.batch(train.n_batches - 1)[0][:, -1, 0] + 1)
    assert not val.resets[0].any()
    with pytest.raises(ParameterError):
        a.split(1.5)


def test_pack_lanes_balances_many_series():
    rng = np.random.default_rng(0)
    chunks = rng.integers(1, 50, size=3000)
    lanes = sb.pack_lanes(chunks, 64)
    loads = [chunks[lane].sum() for lane in lanes]
    assert sorted(i for lane in lanes for i in lane) == list(range(3000))
    assert max(loads) <= -(-chunks.sum() // 64) + 1


def test_batch_and_provenance():
    a = sb.arrange_stateful([np.arange(12.0), np.arange(4.0)], 3, 2)
    x, y, w = a.batch(0)
    assert x.shape == (2, 3, 1) and w.shape == (2, 3)
    info = a.provenance(0, 0)
    assert info["series"] == 0 and info["steps"] == (0, 3) and info["reset"]
    with pytest.raises(ParameterError):
        a.batch(99)
    assert "Arranged(" in repr(a)


def test_plan_lanes_from_lengths_alone_matches_arrangement():
    rng = np.random.default_rng(4)
    series = [rng.normal(size=(n, 1)) for n in rng.integers(1, 90, size=40)]
    a = sb.arrange_stateful(series, 6, 5)
    plan = sb.plan_lanes([len(s) for s in series], 6, 5, horizon=1)
    for name in ("series", "step", "valid", "resets"):
        np.testing.assert_array_equal(getattr(plan, name), getattr(a.plan, name))
    d = sb.arrange_stateful(series, 6, 5, targets=None, remainder="drop")
    np.testing.assert_array_equal(sb.plan_lanes([len(s) for s in series], 6, 5, remainder="drop").valid, d.plan.valid)
