import itertools
import warnings

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch.results.bucketing import padding_of
from statebatch.keras import BucketDataset, to_tf_dataset


def make_seqs(lengths, nf=2):
    return [np.stack([1000 * k + np.arange(n) + 0.5 * f for f in range(nf)], axis=1).astype("float32")
            for k, n in enumerate(lengths)]


MODES = st.sampled_from(["pool", "buckets", "exact"])


@given(lengths=st.lists(st.integers(1, 30), min_size=1, max_size=60), B=st.integers(1, 9), mode=MODES,
       padding=st.sampled_from(["post", "pre"]), seed=st.integers(0, 3), pool=st.integers(1, 4),
       drop=st.booleans())
def test_every_sequence_once_content_and_mask(lengths, B, mode, padding, seed, pool, drop):
    seqs = make_seqs(lengths)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.StatebatchWarning)
        try:
            bk = sb.bucket_batches(seqs, B, mode=mode, padding=padding, seed=seed, pool_batches=pool,
                                   remainder="drop" if drop else "keep", n_buckets=3 if mode == "buckets" else None)
        except sb.ParameterError as exc:  # dropping would leave every sequence out: refused, not silent
            assert drop and "would leave" in str(exc)
            return
        for epoch in range(2):
            seen = []
            for batch in bk.batch_objects(epoch):
                X, mask, idx = batch.X, batch.mask, batch.indices
                assert X.shape[:2] == mask.shape and X.shape[1] == batch.lengths.max()  # pad to the longest only
                assert len(idx) <= B and (not drop or len(idx) == B)
                for row, k in enumerate(idx):
                    real = X[row][mask[row]]
                    np.testing.assert_array_equal(real, seqs[k])  # unpadded content equals the source
                    assert mask[row].sum() == lengths[k]
                    assert np.all(X[row][~mask[row]] == 0)
                    if padding == "post":
                        assert mask[row, : lengths[k]].all()
                    else:
                        assert mask[row, X.shape[1] - lengths[k]:].all()
                if mode == "exact":
                    assert mask.all()  # no padding at all
                seen.extend(idx.tolist())
            left = [lo.series for lo in bk.plan(epoch).left_out]
            assert drop or not left
            assert sorted(seen + left) == list(range(len(lengths)))  # none lost, none duplicated


def brute_force_padding(lengths, k):
    values = sorted(set(lengths))
    best = None
    for cut in itertools.combinations(range(1, len(values)), min(k, len(values)) - 1):
        bounds = [values[c] for c in cut]
        pad = padding_of(lengths, bounds)
        best = pad if best is None else min(best, pad)
    return best


@given(lengths=st.lists(st.integers(1, 25), min_size=1, max_size=40), k=st.integers(1, 5))
def test_dp_boundaries_are_optimal(lengths, k):
    b = sb.bucket_boundaries(lengths, k)
    assert len(b) <= k - 1 and list(b) == sorted(set(b.tolist()))
    assert padding_of(lengths, b) == brute_force_padding(lengths, k)


@pytest.mark.parametrize("sigma", [0.3, 0.7])
def test_default_bucket_count_is_the_smallest_reaching_the_target(sigma):
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(100), sigma, 5000).astype(int), 1, 1000)

    def frac(b):
        pad = padding_of(lengths, b)
        return pad / (lengths.sum() + pad)

    b = sb.bucket_boundaries(lengths, max_padding=0.02, max_buckets=32)
    k = len(b) + 1
    assert frac(b) <= 0.02 or k == 32
    if k > 1:  # one bucket fewer would not reach the target
        assert frac(sb.bucket_boundaries(lengths, k - 1)) > 0.02


def test_shuffle_is_deterministic_and_changes_each_epoch():
    rng = np.random.default_rng(1)
    seqs = make_seqs(rng.integers(1, 50, size=300).tolist())
    a = sb.bucket_batches(seqs, 16, seed=7)
    b = sb.bucket_batches(seqs, 16, seed=7)
    pa, pb = a.plan(0).batches, b.plan(0).batches
    assert all(np.array_equal(x, y) for x, y in zip(pa, pb))
    p1 = a.plan(1).batches
    assert not all(np.array_equal(x, y) for x, y in zip(pa, p1))
    # iteration advances the epoch
    first = [t[0].shape for t in a]
    second = [t[0].shape for t in a]
    assert a.epoch == 2 and first != second


def test_plain_sort_padding_matches_sorted_optimum():
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(np.log(100), 0.7, 20000).astype(int), 1, 1000)
    bk = sb.bucket_batches([np.zeros((n, 1), "float32") for n in lengths], 64, seed=0, bin_width=0)
    # sorted_padding: all lengths sorted and cut into batches of 64, computed independently here
    s = np.sort(lengths)
    tops = np.array([s[i: i + 64].max() for i in range(0, len(s), 64)])
    sizes = np.array([len(s[i: i + 64]) for i in range(0, len(s), 64)])
    optimum = 1 - s.sum() / (tops * sizes).sum()
    assert bk.padding_fraction < optimum + 0.002
    assert bk.explain().extra["padding_fraction"] == pytest.approx(bk.padding_fraction)


def _jittered_sort(lengths, batch_size, seed, epoch):
    """The reference from the issue: a global sort of lengths jittered by 2%, cut, batch order shuffled."""
    rng = np.random.default_rng((seed, epoch, 99))
    order = np.argsort(lengths * (1 + rng.uniform(-0.02, 0.02, len(lengths))), kind="stable")
    batches = tuple(order[i: i + batch_size] for i in range(0, len(order), batch_size))
    return sb.BucketPlan(batches, np.array([lengths[b].max() for b in batches]), lengths, epoch)


def _batch_mates_kept(a, b):
    """Retention written out with sets, independently of statebatch.retention."""
    where_b = {int(i): set(map(int, batch)) for batch in b for i in batch}
    fractions = []
    for batch in a:
        members = set(map(int, batch))
        for i in members:
            mates = members - {i}
            if mates:
                fractions.append(len(mates & where_b.get(i, set())) / len(mates))
    return float(np.mean(fractions))


@pytest.mark.parametrize("sigma", [0.5, 0.55])
def test_default_mixing_beats_jittered_sort_on_padding_and_retention(sigma):
    # The setting: 3,000 lognormal lengths, median 60, batch size 32, consecutive epochs.
    lengths = np.maximum(1, np.round(np.random.default_rng(0).lognormal(np.log(60), sigma, 3000))).astype(int)
    ours, ref = [], []
    for seed in (0, 1):
        ours += [sb.plan_buckets(lengths, 32, seed=seed, epoch=e) for e in range(6)]
        ref += [_jittered_sort(lengths, 32, seed, e) for e in range(6)]

    def measures(plans):
        pads = [1 - sum(lengths[b].sum() for b in p.batches) / sum(lengths[b].max() * len(b) for b in p.batches)
                for p in plans]
        kept = [_batch_mates_kept(a.batches, b.batches) for a, b in zip(plans, plans[1:]) if b.epoch == a.epoch + 1]
        return np.mean(pads), np.mean(kept)

    pad, kept = measures(ours)
    ref_pad, ref_kept = measures(ref)
    assert pad <= ref_pad and kept <= ref_kept
    assert kept == pytest.approx(np.mean([sb.retention(a, b) for a, b in zip(ours, ours[1:]) if b.epoch == a.epoch + 1]))
    # the knob trades one for the other
    wide = [sb.plan_buckets(lengths, 32, seed=0, epoch=e, bin_width=0.1) for e in range(6)]
    assert measures(wide)[0] > pad and measures(wide)[1] < kept
    # the batch count never changes from epoch to epoch
    assert len({p.n_batches for p in ours}) == 1


def test_dropped_sequences_rotate_without_history():
    lengths = np.random.default_rng(3).integers(5, 90, 1000)
    plans = [sb.plan_buckets(lengths, 32, seed=4, epoch=e, remainder="drop") for e in range(40)]
    left = [{lo.series for lo in p.left_out} for p in plans]
    assert all(len(s) == 1000 % 32 for s in left)
    assert all(not (a & b) for a, b in zip(left, left[1:]))  # never left out twice in a row
    counts = np.bincount(np.concatenate([list(s) for s in left]), minlength=1000)
    assert counts.max() - counts.min() <= 1  # left out evenly over the epochs
    for p, s in zip(plans, left):
        members = np.concatenate(p.batches)
        assert len(members) + len(s) == 1000 and not (set(members.tolist()) & s)
        assert all(len(b) == 32 for b in p.batches)
    # epoch 39 planned on its own equals epoch 39 planned after the others
    again = sb.plan_buckets(lengths, 32, seed=4, epoch=39, remainder="drop")
    assert all(np.array_equal(x, y) for x, y in zip(again.batches, plans[39].batches))


def test_token_budget_bounds_batches():
    rng = np.random.default_rng(2)
    lengths = rng.integers(5, 200, size=500)
    bk = sb.bucket_batches(make_seqs(lengths.tolist(), 1), 32, token_budget=2000, seed=0)
    plan = bk.plan().batches
    assert sorted(np.concatenate(plan).tolist()) == list(range(500))
    for idx in plan:
        assert len(idx) == 1 or lengths[idx].max() * len(idx) <= 2000


def test_targets_per_sequence_and_per_step():
    seqs = make_seqs([3, 5, 4, 7], 1)
    y = np.array([0, 1, 2, 3])
    bk = sb.bucket_batches(seqs, 2, targets=y, shuffle=False)
    for batch in bk.batch_objects():
        np.testing.assert_array_equal(batch.y, y[batch.indices])
        assert batch.sample_weight is None
    per_step = [s[:, 0] * 2 for s in seqs]
    bk = sb.bucket_batches(seqs, 2, targets=per_step, return_sequences=True, shuffle=False)
    X, yb, w = next(iter(bk))
    np.testing.assert_array_equal(yb[..., 0][w == 1], X[..., 0][w == 1] * 2)
    with pytest.raises(sb.LengthMismatchError, match="one target per sequence"):
        sb.bucket_batches(seqs, 2, targets=[1, 2])
    with pytest.raises(sb.LengthMismatchError, match="return_sequences=True"):  # per-step targets are never guessed
        sb.bucket_batches(seqs, 2, targets=per_step)
    same_len = make_seqs([3, 3, 3], 1)
    three = np.arange(9).reshape(3, 3)  # three labels per sequence of length 3: per-sequence, as asked
    bk = sb.bucket_batches(same_len, 3, targets=three, shuffle=False)
    assert next(iter(bk))[1].shape == (3, 3) and len(next(iter(bk))) == 2


def test_bad_parameters():
    seqs = make_seqs([3, 4])
    for kw, word in [({"mode": "smart"}, "mode='sort'"), ({"padding": "middle"}, "padding='post'"),
                     ({"mode": "buckets", "boundaries": [5, 3]}, "sorted boundaries")]:
        with pytest.raises(sb.ParameterError, match=word.replace("(", r"\(")):
            sb.bucket_batches(seqs, 2, **kw)
    with pytest.raises(sb.ParameterError):
        sb.bucket_boundaries([])


def test_masked_model_loss_on_padded_batch_equals_one_by_one():
    rng = np.random.default_rng(0)
    lengths = [4, 9, 6, 2, 7, 5]
    seqs = [rng.normal(size=(n, 3)).astype("float32") for n in lengths]
    y = rng.normal(size=(len(seqs), 1)).astype("float32")
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(None, 3))
    h = keras.layers.Masking(mask_value=0.0)(inp)
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.LSTM(4)(h)))
    model.compile(loss="mse")
    bk = sb.bucket_batches(seqs, 6, targets=y, shuffle=False)
    X, yb = next(iter(bk))
    padded_loss = model.evaluate(X, yb, batch_size=6, verbose=0)
    one_by_one = np.mean([model.evaluate(s[None], y[i:i + 1], verbose=0) for i, s in enumerate(seqs)])
    assert X.shape == (6, 9, 3)
    assert padded_loss == pytest.approx(one_by_one, rel=1e-5)


def test_keras_dataset_and_tf_export():
    rng = np.random.default_rng(3)
    seqs = [rng.normal(size=(n, 2)).astype("float32") for n in rng.integers(3, 20, size=90)]
    y = rng.integers(0, 3, size=90)
    bk = sb.bucket_batches(seqs, 16, targets=y, seed=0)
    ds = BucketDataset(bk)
    n0 = len(ds)
    first = [ds[k][0].shape for k in range(n0)]
    ds.on_epoch_end()
    assert len(ds) == n0 and [ds[k][0].shape for k in range(n0)] != first
    inp = keras.Input(shape=(None, 2))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.GRU(4)(keras.layers.Masking()(inp))))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    hist = model.fit(BucketDataset(bk), epochs=2, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    tf_ds = to_tf_dataset(bk)
    xspec, yspec = tf_ds.element_spec
    assert tuple(xspec.shape) == (None, None, 2) and tuple(yspec.shape) == (None,)
    seen = sum(int(x.shape[0]) for x, _ in tf_ds)
    assert seen == 90
    per_step = sb.bucket_batches(seqs, 16, targets=[s[:, :1] for s in seqs], return_sequences=True, seed=0)
    assert [tuple(s.shape) for s in to_tf_dataset(per_step).element_spec] == [(None, None, 2), (None, None, 1),
                                                                             (None, None)]


def test_plot_buckets_and_explain(tmp_path):
    lengths = np.random.default_rng(0).integers(7, 30, size=200)
    fig = sb.plot_buckets(lengths, sb.bucket_boundaries(lengths, 3))
    fig.savefig(tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert len(fig.axes[0].lines) == 2  # two boundaries drawn
    bk = sb.bucket_batches(make_seqs(lengths.tolist(), 1), 32, seed=0)
    text = str(sb.explain(bk))
    assert "batches per epoch" in text and "padding" in text


def test_windows_as_sequences():
    w = sb.make_windows(np.arange(40.0), 5, targets="next")
    bk = sb.bucket_batches(w, 8, shuffle=False)
    X, y = next(iter(bk))
    assert X.shape == (8, 5, 1) and y.shape == (8, 1)


def _least_padding(lengths, k):
    """Brute-force DP over sorted distinct lengths (independent of statebatch): least padding with at
    most k buckets, each padded to its longest member."""
    v, cnt = np.unique(lengths, return_counts=True)
    m = len(v)

    def cost(a, j):
        return sum(int(v[j] - v[t]) * int(cnt[t]) for t in range(a, j + 1))

    best = [cost(0, j) for j in range(m)]
    result = best[-1]
    for _ in range(2, k + 1):
        best = [min([best[i] + cost(i + 1, j) for i in range(j)], default=float("inf")) for j in range(m)]
        result = min(result, best[-1])
    return result


@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=40), k=st.integers(1, 9))
@settings(max_examples=150, deadline=None)
def test_bucket_boundaries_are_optimal(lengths, k):
    b = sb.bucket_boundaries(lengths, k)
    assert len(b) <= k - 1 and (np.diff(b) > 0).all()
    assert sb.padding_of(lengths, b) == _least_padding(lengths, k)


def test_bucket_boundaries_refuse_unbounded_requests():
    with pytest.raises(sb.ParameterError, match="n_buckets"):
        sb.bucket_boundaries([1, 2, 3], n_buckets=10**6)
    with pytest.raises(sb.ParameterError, match="max_padding"):
        sb.bucket_boundaries([1, 2, 3], max_padding=2)


@given(lengths=st.lists(st.integers(1, 50), min_size=2, max_size=80), batch_size=st.integers(1, 9),
       mode=st.sampled_from(["sort", "pool", "exact", "buckets"]), seed=st.integers(0, 99))
@settings(max_examples=60, deadline=None)
def test_remainder_drop_sees_every_sequence_within_two_epochs(lengths, batch_size, mode, seed):
    lengths = np.asarray(lengths)
    kw = {"boundaries": [10, 25]} if mode == "buckets" else {}
    try:
        plans = [sb.plan_buckets(lengths, batch_size, mode=mode, seed=seed, epoch=e, remainder="drop", **kw)
                 for e in range(4)]
    except sb.ParameterError:
        return  # no group fills a batch: refused, not silently empty
    keys = lengths if mode == "exact" else (np.searchsorted([10, 25], lengths, side="right") if mode == "buckets"
                                            else np.zeros(len(lengths), int))
    # sequences whose group can fill a batch are in a batch in at least one of any two consecutive epochs
    fills = np.isin(keys, [k for k in np.unique(keys) if (keys == k).sum() >= batch_size])
    for a, b in zip(plans, plans[1:]):
        seen = np.zeros(len(lengths), bool)
        for p in (a, b):
            for members in p.batches:
                seen[members] = True
        assert seen[fills].all()
    for p in plans:  # and each epoch accounts for every sequence exactly once
        members = np.concatenate(p.batches) if p.batches else np.empty(0, int)
        left = np.array([lo.series for lo in p.left_out], dtype=int)
        assert sorted(np.concatenate([members, left]).tolist()) == list(range(len(lengths)))
        assert all(len(m) == batch_size for m in p.batches)


def test_tf_export_has_known_cardinality_and_repeats_for_steps_per_epoch():
    import tensorflow as tf

    rng = np.random.default_rng(5)
    seqs = [rng.normal(size=(n, 2)).astype("float32") for n in rng.integers(3, 30, size=100)]
    bk = sb.bucket_batches(seqs, 16, targets=rng.normal(size=(100, 1)).astype("float32"), seed=0)
    ds = to_tf_dataset(bk)
    assert int(ds.cardinality()) == bk.n_batches
    # steps_per_epoch across epochs: .repeat() re-plans (reshuffles) on every pass and never runs dry
    inp = keras.Input(shape=(None, 2))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GRU(3)(inp)))
    model.compile(optimizer="adam", loss="mse")
    steps = bk.n_batches - 2
    hist = model.fit(ds.repeat(), steps_per_epoch=steps, epochs=4, verbose=0)
    assert len(hist.history["loss"]) == 4 and np.isfinite(hist.history["loss"]).all()
    seen = [int(x.shape[0]) for x, _ in ds.repeat().take(2 * bk.n_batches)]
    assert sum(seen[:bk.n_batches]) == sum(seen[bk.n_batches:]) == 100  # every sequence once per pass
    assert isinstance(ds.element_spec[0], tf.TensorSpec)
