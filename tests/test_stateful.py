"""Plan and materialisation properties of the stateful arranger (no Keras needed)."""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import statebatch as sb
from statebatch.materialise import gather as materialise
from statebatch.errors import LengthMismatchError, ParameterError, RemainderError, ShapeError


def make_series(lengths, nf=2):
    # every value encodes (series, step, feature) so misplaced data cannot go unnoticed
    return [np.stack([1000 * k + np.arange(n) + 0.1 * f for f in range(nf)], axis=1) for k, n in enumerate(lengths)]


def check_plan(a, series, T, horizon_used):
    """The invariants every arrangement must satisfy."""
    p = a.plan()
    nb, B = p.series.shape
    usable = [max(len(s) - horizon_used, 0) for s in series]
    # 1. every input step appears exactly once, or is reported in left_out
    seen = {}
    for k in range(nb):
        for i in range(B):
            s = p.series[k, i]
            if s < 0:
                assert p.valid[k, i] == 0
                continue
            for t in range(p.step[k, i], p.step[k, i] + p.valid[k, i]):
                seen[(int(s), int(t))] = seen.get((int(s), int(t)), 0) + 1
    reported = {(lo.series, t) for lo in p.left_out for t in range(lo.first_step, lo.first_step + lo.steps)}
    expected = {(s, t) for s, u in enumerate(usable) for t in range(u)}
    assert set(seen) | (reported & expected) == expected and all(c == 1 for c in seen.values())
    assert not set(seen) & reported
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
    p = a.plan()
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
    lane_len = a.plan().valid.sum(axis=0)
    lane_chunks = (a.plan().valid > 0).sum(axis=0)
    assert lane_chunks.max() - lane_chunks.min() <= 1  # balanced within one chunk
    # lanes are consecutive pieces of the series: lane i+1 starts where lane i ends
    starts = a.plan().step[0]
    for i in range(B - 1):
        if lane_len[i + 1]:
            assert starts[i + 1] == starts[i] + lane_len[i]


def test_one_series_drop_is_a_zero_copy_view_and_reports():
    x = np.arange(1003.0 * 2).reshape(1003, 2)
    a = sb.arrange_stateful(x, 10, 4, targets=None, tail="drop")
    assert np.shares_memory(a.batch_view, x) and not a.batch_view.flags.writeable
    assert a.batch_view.shape == (25, 4, 10, 2)
    assert sum(d.steps for d in a.left_out) == 3
    np.testing.assert_array_equal(a.X, a.batch_view.reshape(100, 10, 2))
    # row i of batch k+1 continues row i of batch k
    np.testing.assert_array_equal(a.batch_view[1, :, 0], a.batch_view[0, :, -1] + 2)


def test_remainder_policies():
    x = np.arange(105.0)
    # the messages use the option's current name (remainder= is its deprecated one)
    with pytest.raises(RemainderError, match="tail='pad'") as err:
        sb.arrange_stateful(x, 10, 2, tail="error")
    assert "remainder" not in str(err.value)
    d = sb.arrange_stateful(x, 10, 2, tail="drop")
    assert {r.reason.split(":")[0] for r in d.left_out} == {"tail='drop'"}
    with pytest.raises(RemainderError, match="tail='pad' or 'drop'"):
        sb.arrange_stateful(np.arange(60.0), 10, 4, tail="error", targets=None)  # 6 chunks over 4 lanes
    one = sb.arrange_stateful(np.arange(61.0), 10, 4, tail="drop", targets=None)
    assert all(r.reason.startswith("tail='drop'") for r in one.left_out) and len(one.left_out) == 2
    # every step is an input or reported (the final step, the target of a dropped step, included)
    assert sum(r.steps for r in d.left_out) + d.plan().valid.sum() == 105
    with pytest.raises(ParameterError, match="tail"):
        sb.arrange_stateful(x, 10, 2, tail="truncate")
    many = [np.arange(23.0), np.arange(31.0)]
    d = sb.arrange_stateful(many, 5, 2, tail="drop", targets=None)
    assert [(r.series, r.steps) for r in d.left_out] == [(0, 3), (1, 1)]


def test_remainder_is_the_deprecated_name_of_tail():
    x = np.arange(105.0)
    with pytest.warns(FutureWarning, match="renamed tail"):
        old = sb.arrange_stateful(x, 10, 2, remainder="drop")
    new = sb.arrange_stateful(x, 10, 2, tail="drop")
    assert old.tail == new.tail == old.remainder == "drop"
    np.testing.assert_array_equal(old.X, new.X)
    with pytest.warns(FutureWarning), pytest.raises(ParameterError, match="given twice"):
        sb.arrange_stateful(x, 10, 2, tail="error", remainder="drop")
    with pytest.warns(FutureWarning, match="renamed tail"):
        p = sb.plan_lanes([105], 10, 2, remainder="drop")
    assert p.left_out == sb.plan_lanes([105], 10, 2, tail="drop").left_out
    with pytest.warns(FutureWarning), pytest.raises(ParameterError, match="given twice"):
        sb.plan_lanes([105], 10, 2, tail="error", remainder="drop")


def test_many_to_one_targets_and_weights():
    s = [np.arange(23.0), 100 + np.arange(11.0)]
    a = sb.arrange_stateful(s, 5, 2, return_sequences=False)
    X, y, w = a.X, a.y, a.sample_weight
    assert y.shape == (len(X), 1) and w.shape == (len(X),)
    full = np.flatnonzero(w == 1)
    np.testing.assert_array_equal(y[full, 0], X[full, -1, 0] + 1)
    assert np.all(w[a.plan().valid.reshape(-1) < 5] == 0)


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
    out = a.unbatch(a.X, as_dict=True)
    np.testing.assert_array_equal(out["a"][:, 0], np.arange(12.0))
    np.testing.assert_array_equal(out["b"][:, 0], 50 + np.arange(7.0))


@given(lengths=st.lists(st.integers(2, 50), min_size=1, max_size=6), T=st.integers(1, 6), B=st.integers(1, 4))
def test_unarrange_roundtrip(lengths, T, B):
    series = make_series(lengths, nf=1)
    a = sb.arrange_stateful(series if len(series) > 1 else series[0], T, B)
    back = a.unbatch(a.X)
    for s, b in zip(series, back):
        np.testing.assert_array_equal(b, s[:-1])  # every input step except the last (it is only a target)
    per_chunk = a.unbatch(a.X[:, -1, :])  # one output per chunk
    assert sum(len(p) for p in per_chunk) == int((a.plan().valid > 0).sum())


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("horizon", [1, 3])
def test_split_holds_out_the_last_part_of_every_series_in_time(return_sequences, horizon):
    lengths = [40, 55, 23, 90, 31, 64, 47, 28]
    # value = series * 1000 + step: every number says where it came from
    series = [(i * 1000 + np.arange(n, dtype=np.float64))[:, None] for i, n in enumerate(lengths)]
    a = sb.arrange_stateful(series, 5, 4, horizon=horizon, return_sequences=return_sequences)
    train, val = a.split(0.2)
    held = [int(np.ceil(n * 0.2)) for n in lengths]
    cut = [n - h for n, h in zip(lengths, held)]  # first held-out step of each series
    # training never sees a held-out value, as input or as target
    for i, (x, y) in enumerate(zip(train.unbatch(train.X), train.unbatch(train.y if return_sequences else train.X))):
        assert x.size and (x % 1000).max() < cut[i] - horizon + 1 and (y % 1000).max() < cut[i]
    w = np.asarray(train.sample_weight)
    ty = np.asarray(train.y)[..., 0]
    assert (ty[w > 0] % 1000).max() < max(cut) and all(
        (ty[w > 0][(ty[w > 0] // 1000) == i] % 1000).max() < cut[i] for i in range(len(lengths)))
    # validation: every series has weighted targets, exactly its held-out ones
    vy, vw = np.asarray(val.y)[..., 0], np.asarray(val.sample_weight)
    for i in range(len(lengths)):
        mine = (vy // 1000 == i) & (vw > 0)
        got = np.unique(vy[mine] % 1000).astype(int)
        if return_sequences:
            assert got.tolist() == list(range(cut[i], lengths[i]))
        else:  # one target per chunk: the chunk ends inside the held-out part
            assert got.size and got.min() >= cut[i] and got.max() <= lengths[i] - 1
    # each series starts from its first step in a reset lane: the state reaches the held-out part exactly
    assert not val.continues
    plan = val.plan()
    starts = {int(plan.series[k, j]): int(plan.step[k, j]) for k, j in zip(*np.nonzero(plan.resets & (plan.series >= 0)))}
    assert starts == {i: 0 for i in range(len(lengths))}
    if return_sequences:
        for i, x in enumerate(val.unbatch(val.X)):
            np.testing.assert_array_equal(x[:, 0], series[i][: len(x), 0])
    assert "holdout in time" in " ".join(val.explain().lines)
    with pytest.raises(ParameterError):
        a.split(1.5)
    with pytest.raises(ParameterError, match="already the validation part"):
        val.split(0.2)
    with pytest.raises(ParameterError, match="fewer than"):
        sb.arrange_stateful([np.arange(3.0), np.arange(50.0)], 2, 2).split(0.5)


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


@given(lengths=st.lists(st.integers(0, 70), min_size=1, max_size=9), T=st.integers(1, 7), B=st.integers(1, 5),
       remainder=st.sampled_from(["pad", "drop", "error"]), targets=st.sampled_from(["next", None]),
       shuffle=st.booleans(), jitter=st.integers(0, 3), seed=st.integers(0, 5), epoch=st.integers(0, 3))
def test_plan_lanes_is_the_plan_arrange_stateful_uses(lengths, T, B, remainder, targets, shuffle, jitter, seed, epoch):
    """One source of plans: plan_lanes(lengths) equals the arrangement's plan, for one series and many,
    every remainder mode, shuffled and jittered epochs; and computing a plan is pure."""
    jitter = min(jitter, T - 1) if remainder == "pad" else 0
    series = make_series(lengths, nf=1)
    data = series if len(series) > 1 else series[0]
    kw = dict(targets=targets, shuffle=shuffle, seed=seed, jitter=jitter)
    try:
        a = sb.arrange_stateful(data, T, B, tail=remainder, **kw)
    except (ShapeError, RemainderError, sb.DataValueError) as exc:
        with pytest.raises((ShapeError, RemainderError) if isinstance(exc, sb.DataValueError) else type(exc)):
            sb.plan_lanes(lengths, T, B, tail=remainder, **kw)
        return
    kw["tail"] = remainder
    a.set_epoch(epoch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # computing a plan warns about nothing
        p1 = sb.plan_lanes(lengths, T, B, epoch=epoch, **kw)
        p2 = sb.plan_lanes(lengths, T, B, epoch=epoch, **kw)
    for name in ("series", "step", "valid", "resets"):
        np.testing.assert_array_equal(getattr(p1, name), getattr(a.plan(), name))
        np.testing.assert_array_equal(getattr(p1, name), getattr(p2, name))  # same inputs, same plan
    assert p1.left_out == p2.left_out == a.plan().left_out
    if len(series) > 1 and not jitter:
        assert p1.n_batches == a.plan(0).n_batches  # repacking keeps the batch count
    if not jitter:
        check_plan(a, series, T, horizon_used=1 if targets == "next" else 0)


def test_plan_lanes_one_series_is_split_into_lanes():
    plan = sb.plan_lanes([1000], 10, 4, targets=None)
    a = sb.arrange_stateful(np.arange(1000.0), 10, 4, targets=None)
    assert plan.n_batches == a.n_batches == 25 and (plan.series >= 0).all()
    np.testing.assert_array_equal(plan.step[0], [0, 250, 500, 750])


@given(lengths=st.lists(st.integers(1, 40), min_size=2, max_size=12), T=st.integers(1, 5), B=st.integers(1, 4),
       seed=st.integers(0, 9))
def test_shuffled_epochs_repack_and_keep_every_step_once(lengths, T, B, seed):
    series = make_series(lengths)
    a = sb.arrange_stateful(series, T, B, targets=None, shuffle=True, seed=seed)
    n0 = a.n_batches
    orders = set()
    for epoch in range(3):
        a.set_epoch(epoch)
        assert a.n_batches == n0
        check_plan(a, series, T, horizon_used=0)
        orders.add(tuple(a.plan().series[a.plan().resets].tolist()))
    if len(lengths) >= 6 and B >= 2:
        assert len(orders) > 1  # the packing changes between epochs


@example(n=20, T=2, B=1, jitter=1, seed=0, many=False)
@given(n=st.integers(20, 300), T=st.integers(2, 9), B=st.integers(1, 4), jitter=st.integers(1, 8),
       seed=st.integers(0, 9), many=st.booleans())
def test_jitter_moves_chunk_boundaries_and_keeps_lanes_continuous(n, T, B, jitter, seed, many):
    jitter = min(jitter, T - 1)
    series = make_series([n, n // 2 + 3, 7, n // 3 + 1] if many else [n])
    a = sb.arrange_stateful(series, T, B, targets=None, jitter=jitter, seed=seed, shuffle=many)
    edges, counts = [], set()
    for epoch in range(12):
        a.set_epoch(epoch)
        p = a.plan()
        counts.add(p.n_batches)
        assert p.batch_steps is not None and (p.batch_steps >= T - jitter).all() and (p.batch_steps <= T).all()
        seen = np.zeros(n, dtype=int)
        for k in range(p.n_batches):
            X = a.batch(k)[0]
            assert X.shape[1] == p.batch_steps[k]
            for i in range(B):
                s, st0, v = p.series[k, i], p.step[k, i], p.valid[k, i]
                if v:
                    np.testing.assert_array_equal(X[i, :v], series[s][st0: st0 + v])
                    if s == 0:
                        seen[st0: st0 + v] += 1
                if k and not p.resets[k, i] and s >= 0:  # a lane continues where it stopped
                    assert p.series[k - 1, i] == s and p.step[k - 1, i] + p.valid[k - 1, i] == st0
        assert (seen == 1).all()
        edges.append(tuple(sorted(p.step[p.series == 0].tolist())))
    assert len(counts) == 1  # Keras reads the batch count once per fit: it never changes
    if n > 8 * T:  # (random lengths: with two choices per batch, 12 equal epochs has probability 2**-11)
        assert len(set(edges)) > 1  # boundaries fall on different steps in different epochs


def test_plans_are_pure_and_seeded():
    with pytest.raises(ParameterError, match="seed"):
        sb.plan_lanes([10, 20], 3, 2, shuffle=True)
    p = sb.plan_lanes([10, 20, 30, 5], 3, 2, shuffle=True, seed=1, epoch=2)
    q = sb.plan_lanes([10, 20, 30, 5], 3, 2, shuffle=True, seed=1, epoch=2)
    np.testing.assert_array_equal(p.series, q.series)
    a = sb.arrange_stateful([np.arange(10.0), np.arange(20.0)], 3, 2, shuffle=True)  # seed drawn once
    np.testing.assert_array_equal(a.plan(3).series, a.plan(3).series)
    r1, r2 = repr(a), repr(a)
    assert r1 == r2


@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=6), T=st.integers(1, 7), B=st.integers(1, 4),
       horizon=st.integers(1, 3), remainder=st.sampled_from(["pad", "drop"]))
def test_every_step_is_an_input_a_target_of_one_or_reported(lengths, T, B, horizon, remainder):
    try:
        p = sb.plan_lanes(lengths, T, B, targets="next", horizon=horizon, tail=remainder)
    except (sb.ShapeError, sb.RemainderError):
        return  # nothing fits: refused with a statebatch error
    seen = [np.zeros(n, dtype=int) for n in lengths]
    for k in range(p.n_batches):
        for i in range(B):
            s, a, v = int(p.series[k, i]), int(p.step[k, i]), int(p.valid[k, i])
            if s >= 0 and v:
                seen[s][a: a + v] += 1  # as inputs
    for lo in p.left_out:
        seen[lo.series][lo.first_step: lo.first_step + lo.steps] += 1
    for s, n in enumerate(lengths):
        inputs_end = int(np.flatnonzero(seen[s])[-1]) + 1 if seen[s].any() else 0
        # the last `horizon` steps are targets of the inputs before them when those are used
        tail = np.zeros(n, dtype=int)
        tail[max(n - horizon, 0):] = 1
        covered = seen[s] + (tail * (seen[s] == 0))
        assert (covered == 1).all(), (s, seen[s].tolist(), inputs_end)


@given(lengths=st.lists(st.integers(4, 40), min_size=1, max_size=9), frac=st.floats(0.05, 0.5),
       horizon=st.integers(1, 2), T=st.integers(1, 6), B=st.integers(1, 5), shuffle=st.booleans())
def test_split_in_time_property(lengths, frac, horizon, T, B, shuffle):
    """Whatever the sizes: no held-out value reaches training, and validation weighs exactly the held-out targets."""
    series = [(i * 1000 + np.arange(n, dtype=np.float64))[:, None] for i, n in enumerate(lengths)]
    a = sb.arrange_stateful(series, T, B, horizon=horizon, shuffle=shuffle, seed=1)
    cut = [n - int(np.ceil(n * frac)) for n in lengths]
    if min(cut) < horizon + 1:
        with pytest.raises(ParameterError):
            a.split(frac)
        return
    train, val = a.split(frac)
    for epoch in (0, 1):
        X, y, w = (np.concatenate(p) for p in zip(*train.batches(epoch)))
        real = w > 0
        for arr in (X[..., 0][np.broadcast_to(real, X.shape[:2])], y[..., 0][real]):
            sid, step = (arr // 1000).astype(int), arr % 1000
            assert np.all(step < np.take(cut, sid))
    y, w = np.asarray(val.y)[..., 0], np.asarray(val.sample_weight)
    for i, n in enumerate(lengths):
        got = np.sort(y[(w > 0) & (y // 1000 == i)] % 1000).astype(int)
        assert got.tolist() == list(range(cut[i], n))


def test_split_of_one_series_runs_it_whole_in_one_lane_for_validation():
    a = sb.arrange_stateful(np.arange(200.0), 10, 4)  # training: 4 lanes that each start from zero
    train, val = a.split(0.25)
    plan = val.plan()
    busy = np.flatnonzero((plan.series >= 0).any(axis=0))
    assert busy.tolist() == [0] and plan.resets[:, 0].sum() == 1  # one lane, never reset after its start
    np.testing.assert_array_equal(val.unbatch(val.X)[0][:, 0], np.arange(199.0))
    w = val.unbatch(val.sample_weight[..., None])[0][:, 0]
    np.testing.assert_array_equal(np.flatnonzero(w), np.arange(149, 199))  # targets 150..199 held out
    assert train.series_lengths.tolist() == [150] and (np.asarray(train.y)[np.asarray(train.sample_weight) > 0] < 150).all()


def _slot_reference(plan, series, T, shift, pad):
    """Every (batch, lane) slot of an epoch built one slot at a time from the plan and the raw series:
    rows ``step + shift .. step + shift + valid`` of its series, then ``pad``."""
    nb, B = plan.series.shape
    out = np.full((nb, B, T, series[0].shape[1]), pad, dtype=series[0].dtype)
    for k in range(nb):
        for i in range(B):
            s, st0, v = plan.series[k, i], plan.step[k, i], plan.valid[k, i]
            if s >= 0 and v:
                out[k, i, :v] = series[s][st0 + shift: st0 + shift + v]
    return out


@given(lengths=st.lists(st.integers(0, 45), min_size=2, max_size=9).filter(any), T=st.integers(1, 6), B=st.integers(1, 5),
       targets=st.sampled_from(["next", None]), return_sequences=st.booleans(),
       remainder=st.sampled_from(["pad", "drop"]), shuffle=st.booleans(), seed=st.integers(0, 5),
       block_bytes=st.sampled_from([16, 200, 2 << 20]))
def test_batches_served_from_packed_lanes_match_a_slot_by_slot_reference(lengths, T, B, targets, return_sequences,
                                                                         remainder, shuffle, seed, block_bytes):
    default = materialise._FILL_BLOCK_BYTES
    materialise._FILL_BLOCK_BYTES = block_bytes  # lanes written in many small blocks, or in one
    try:
        _check_packed_batches(lengths, T, B, targets, return_sequences, remainder, shuffle, seed)
    finally:
        materialise._FILL_BLOCK_BYTES = default


def _check_packed_batches(lengths, T, B, targets, return_sequences, remainder, shuffle, seed):
    series = make_series(lengths)
    h = 1 if targets == "next" else 0
    try:
        a = sb.arrange_stateful(series, T, B, targets=targets, return_sequences=return_sequences, tail=remainder,
                                shuffle=shuffle, seed=seed, pad_value=-7.0)
    except ShapeError:  # nothing fits: refused with the reason (tested elsewhere)
        return
    assert [w for (_, w) in a._m.lanes] == ["x"]  # many in-memory series are packed when arranged
    for epoch in (0, 1):
        a.set_epoch(epoch)
        plan = a.plan()
        X = _slot_reference(plan, series, T, 0, -7.0)
        Y = _slot_reference(plan, series, T, h, -7.0) if targets == "next" else None
        blocks = a._block(0, plan.n_batches)
        for k in range(plan.n_batches):
            got = a.batch(k)
            np.testing.assert_array_equal(got[0], X[k])
            np.testing.assert_array_equal(blocks[0][k], X[k])
            if Y is not None and return_sequences:
                np.testing.assert_array_equal(got[1], Y[k])
                np.testing.assert_array_equal(blocks[1][k], Y[k])
        np.testing.assert_array_equal(a.X, X.reshape((-1,) + X.shape[2:]))  # the epoch in batch order
        if Y is not None and return_sequences:
            np.testing.assert_array_equal(a.y, Y.reshape((-1,) + Y.shape[2:]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where, targets, remainder", [
    ("inside", "next", "pad"), ("inside", None, "pad"),
    ("last", "next", "pad"),      # a held-back target step: in no input lane
    ("last", None, "drop"),       # a dropped remainder step
    ("short", "next", "pad"),     # a series too short to have any input step
])
@pytest.mark.parametrize("block_bytes", [24, 2 << 20])
def test_nan_or_inf_anywhere_in_many_series_is_refused_and_located(bad, where, targets, remainder, block_bytes,
                                                                   monkeypatch):
    monkeypatch.setattr(materialise, "_FILL_BLOCK_BYTES", block_bytes)  # checked in many blocks, or in one
    lengths = [23, 1, 17, 40, 9] if where == "short" else [23, 12, 17, 40, 9]
    series = [s.astype(np.float32) for s in make_series(lengths)]
    k, t = {"inside": (3, 21), "last": (2, 16), "short": (1, 0)}[where]
    series[k][t, 1] = bad
    with pytest.raises(sb.errors.DataValueError, match=f"series {k} step {t}"):
        sb.arrange_stateful(series, 5, 3, targets=targets, tail=remainder)
    nan = bool(np.isnan(bad))  # NaN and inf are allowed separately: the other kind is still refused
    with pytest.raises(sb.errors.DataValueError, match=f"series {k} step {t}"):
        sb.arrange_stateful(series, 5, 3, targets=targets, tail=remainder, allow_nan=not nan, allow_inf=nan)
    sb.arrange_stateful(series, 5, 3, targets=targets, tail=remainder, allow_nan=nan, allow_inf=not nan)


def test_huge_finite_values_are_accepted_by_the_one_pass_check():
    # Squares of 1e30 overflow float32: the one-pass check is inconclusive and the exact check accepts them.
    series = [np.full((n, 2), 1e30, dtype=np.float32) for n in (13, 7, 21)]
    a = sb.arrange_stateful(series, 4, 2, targets=None)
    assert np.isfinite(a.X).all() and (a.X == 1e30).sum() == 2 * 41


def test_bad_data_is_reported_before_bad_arguments():
    series = make_series([12, 15, 9])
    series[2][3, 0] = np.nan
    with pytest.raises(sb.errors.DataValueError, match="series 2 step 3"):
        sb.arrange_stateful(series, 4, 2, targets="bogus")
    with pytest.raises(sb.errors.DataValueError, match="series 2 step 3"):
        sb.arrange_stateful(series, 40, 2)  # no chunk fits either
    with pytest.raises(sb.errors.DataValueError, match="series 2 step 3"):
        sb.arrange_stateful(series, 4, 2, targets=[np.full(12, np.nan), np.zeros(15), np.zeros(9)])


@given(lengths=st.lists(st.integers(12, 60), min_size=1, max_size=9), B=st.integers(1, 4))
def test_repr_explain_and_layout_count_lane_resets_in_one_vocabulary(lengths, B):
    # many series: each starts once per epoch in some lane, the first batch starts min(B, n) of them, the rest
    # start mid-epoch, where a lane moves on to its next series; one series is cut into B lanes that all start
    # at the first batch (counted from the lengths, not the plan)
    rng = np.random.default_rng(len(lengths))
    # (one series: at least 12 steps a lane, so that every lane holds data; a shorter series leaves lanes empty)
    data = [rng.normal(size=n) for n in lengths] if len(lengths) > 1 else rng.normal(size=lengths[0] * B)
    a = sb.arrange_stateful(data, 4, B, targets=None)
    n = len(lengths)
    total, mid = (n, n - min(B, n)) if n > 1 else (B, 0)
    assert f"resets={total} ({mid} mid-epoch)" in repr(a) and f"resets={total} ({mid} mid-epoch)" in repr(a.plan())
    text = str(a.explain())
    evidence = sb.detect_layout(a.X, B).evidence
    if mid:
        assert f"({mid} mid-epoch lane reset{'s' if mid > 1 else ''}, after the first batch)" in text
        assert f"{mid} mid-epoch lane reset(s)" in evidence
    else:
        assert "mid-epoch" not in text and "reset(s)" not in evidence
    assert "lane reset(s) where a new series starts" not in evidence  # the old wording, without "mid-epoch"


@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=5), T=st.integers(1, 7), B=st.integers(1, 4),
       shuffle=st.booleans(), tail=st.sampled_from(["pad", "drop"]), epoch=st.integers(1, 5))
def test_plans_of_arrangements_that_do_not_vary_are_reused_and_equal_a_fresh_plan(lengths, T, B, shuffle, tail, epoch):
    # an arrangement whose plans do not vary (no jitter; one series, or not shuffled) plans once; every later
    # epoch's plan must equal what plan_lanes gives for that epoch
    from statebatch.plans.lanes import plan_lanes

    series = [np.arange(n, dtype=np.float32)[:, None] for n in lengths]
    try:
        a = sb.arrange_stateful(series, T, B, shuffle=shuffle, seed=3, tail=tail)
    except sb.StatebatchError:  # nothing to arrange (every series dropped)
        return
    a.plan(0)
    got = a.plan(epoch)
    want = plan_lanes(a.series_lengths, T, B, targets="next" if a.target_mode == "next" else None, tail=tail,
                      shuffle=shuffle, seed=3, epoch=epoch)
    assert got.epoch == epoch
    for f in ("series", "step", "valid", "resets"):
        np.testing.assert_array_equal(getattr(got, f), getattr(want, f))
