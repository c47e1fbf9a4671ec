"""Keras datasets and helpers on every backend: bucketing in fit/evaluate/predict whatever the batch
order, predictions back in the original order, and the backend traps statebatch repairs or reports."""
import keras
import numpy as np
import pytest

import statebatch as sb
from statebatch.keras import BucketDataset, LaneResetCallback, StatefulDataset, predict, stateful_scope

from _backend import BACKEND

pytestmark = pytest.mark.backend
RNG = np.random.default_rng(7)


def seq_model(per_step: bool, features=2, out=1):
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(None, features))
    h = keras.layers.GRU(4, return_sequences=per_step)(inp)
    return keras.Model(inp, keras.layers.Dense(out)(h))


def test_bucket_dataset_whose_first_batches_share_a_length_runs_fit_evaluate_predict():
    # three buckets, the first two of the same length: Keras on TF used to fix the length from them
    lengths = [50] * 128 + [75] * 84
    seqs = [RNG.normal(size=(n, 2)).astype("float32") for n in lengths]
    y = RNG.normal(size=(len(seqs), 1)).astype("float32")
    bk = sb.bucket_batches(seqs, 64, targets=y, shuffle=False)
    ds = BucketDataset(bk)
    shapes = [ds[k][0].shape for k in range(len(ds))]
    plan = bk.plan()
    assert [(len(b), int(p)) for b, p in zip(plan.batches, plan.padded_lengths)] == [(64, 50), (64, 50), (64, 75), (20, 75)]
    assert shapes[0][0] != shapes[1][0] and shapes[0][1] != shapes[1][1]  # what Keras derives its spec from
    model = seq_model(per_step=False)
    model.compile(optimizer="adam", loss="mse")
    hist = model.fit(ds, epochs=2, shuffle=False, verbose=0)
    assert np.isfinite(hist.history["loss"]).all()
    assert np.isfinite(model.evaluate(BucketDataset(bk), verbose=0))
    # per-sequence outputs concatenate; back in the original order they equal each sequence alone
    ds = BucketDataset(bk)
    raw = model.predict(ds, verbose=0)
    per_seq = ds.unbatch(np.split(raw, np.cumsum([len(ds[k][0]) for k in range(len(ds))])[:-1]))
    want = np.concatenate([keras.ops.convert_to_numpy(model(s[None])) for s in seqs[::37]])
    np.testing.assert_allclose(per_seq[::37], want, atol=1e-5)


def test_predict_per_step_outputs_per_sequence_in_original_order():
    lengths = RNG.integers(3, 40, size=70)
    seqs = [RNG.normal(size=(n, 2)).astype("float32") for n in lengths]
    bk = sb.bucket_batches(seqs, 16, targets=[s[:, :1] for s in seqs], return_sequences=True, seed=1)
    model = seq_model(per_step=True)
    out = predict(model, bk)
    assert len(out) == len(seqs)
    for s, o in zip(seqs, out):  # right-padding cannot reach real steps of a forward RNN
        np.testing.assert_allclose(o, keras.ops.convert_to_numpy(model(s[None]))[0], atol=1e-5)


def test_predict_windows_in_original_order_after_shuffling():
    series = RNG.normal(size=(300, 2)).astype("float32")
    w = sb.make_windows(series, 12, targets="next", batch_size=32, shuffle=True, seed=4)
    model = seq_model(per_step=False, out=2)
    out = predict(model, w)
    X, _ = w.arrays()
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(model(X)), atol=1e-5)


def test_predict_arranged_series_each_alone():
    series = [RNG.normal(size=(n, 2)).astype("float32") for n in (23, 9, 31, 14)]
    a = sb.arrange_stateful(series, 4, 2, targets=None)
    inp = keras.Input(batch_shape=(2, None, 2))
    keras.utils.set_random_seed(0)
    m = keras.Model(inp, keras.layers.LSTM(3, stateful=True, return_sequences=True)(inp))
    inp2 = keras.Input(shape=(None, 2))
    ref = keras.Model(inp2, keras.layers.LSTM(3, return_sequences=True)(inp2))
    ref.set_weights(m.get_weights())
    for s, o in zip(series, predict(m, a)):
        np.testing.assert_allclose(o, keras.ops.convert_to_numpy(ref(s[None]))[0], atol=1e-5)


def lane_model(B, T, head=False):
    keras.utils.set_random_seed(0)
    inp = keras.Input(batch_shape=(B, T, 1))
    h = keras.layers.LSTM(3, stateful=True, return_sequences=True)(inp)
    return keras.Model(inp, keras.layers.Dense(1)(h) if head else h)


def test_plain_keras_calls_carry_state_inside_stateful_scope():
    B, T = 2, 5
    series = RNG.normal(size=(B * T * 6, 1)).astype("float32")
    a = sb.arrange_stateful(series, T, B, targets=None, tail="drop")
    m = lane_model(B, T)
    X = np.concatenate([a.batch(k)[0] for k in range(a.n_batches)])
    with stateful_scope(m):
        out = m.predict(X, batch_size=B, verbose=0)
    lanes = a.unbatch(out)  # one series: the whole series' outputs, lane after lane
    inp = keras.Input(shape=(None, 1))
    ref = keras.Model(inp, keras.layers.LSTM(3, return_sequences=True)(inp))
    ref.set_weights(m.get_weights())
    half = len(series) // 2  # lane 0 holds the first half, lane 1 the second; each carries state across 3 batches
    for part, lo in ((lanes[0][:half], 0), (lanes[0][half:], half)):
        np.testing.assert_allclose(part, keras.ops.convert_to_numpy(ref(series[None, lo:lo + half]))[0], atol=1e-5)
    assert not m.non_trainable_variables or BACKEND != "jax" or all(
        v.path.split("/")[-1] != "rnn_state" for v in m.non_trainable_variables)  # untracked after the block


def test_validate_names_the_backend_trap_and_statebatch_calls_are_exempt():
    m = lane_model(2, 5)
    X = RNG.normal(size=(8, 5, 1)).astype("float32")
    rep = sb.validate(X, model=m, batch_size=2, stateful=True, emit_warnings=False)
    trap = [w for w in rep.warnings if "backend" in w]
    if BACKEND == "jax":
        assert trap and "stateless" in trap[0] and "stateful_scope" in trap[0]
    elif BACKEND == "torch":
        assert trap and "inplace operation" in trap[0] and "stateful_scope" in trap[0]
    else:
        assert not trap
    with stateful_scope(m):
        assert not [w for w in sb.validate(X, model=m, batch_size=2, stateful=True, emit_warnings=False).warnings
                    if "backend" in w]


def test_lane_reset_callback_leaves_no_tracking_behind_and_weights_load_into_a_plain_model(tmp_path):
    a = sb.arrange_stateful(RNG.normal(size=(60, 1)).astype("float32"), 5, 2, targets="next")
    m = lane_model(2, 5, head=True)
    m.compile(optimizer="adam", loss="mse")
    n_before = len(m.weights)
    sb.keras.fit_stateful(m, a, epochs=1, verbose=0)
    assert len(m.weights) == n_before
    m.save_weights(tmp_path / "w.weights.h5")
    fresh = lane_model(2, 5, head=True)
    fresh.load_weights(tmp_path / "w.weights.h5")
    for u, v in zip(m.trainable_weights, fresh.trainable_weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(u), keras.ops.convert_to_numpy(v))


def test_worker_threads_keep_lanes_in_order():
    series = [RNG.normal(size=(n, 2)).astype("float32") for n in (53, 21, 70, 38, 44, 29)]
    a = sb.arrange_stateful(series, 3, 2, targets="next")
    keras.utils.set_random_seed(0)
    inp = keras.Input(batch_shape=(2, None, 2))
    m = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GRU(3, stateful=True, return_sequences=True)(inp)))
    m.compile(optimizer="adam", loss="mse")
    assert a.n_batches > 40  # several windows of batches in flight
    m.fit(StatefulDataset(a, workers=4), epochs=3, shuffle=False, verbose=0, callbacks=[LaneResetCallback(a)])
    inp2 = keras.Input(shape=(None, 2))
    ref = keras.Model(inp2, keras.layers.Dense(2)(keras.layers.GRU(3, return_sequences=True)(inp2)))
    ref.set_weights(m.get_weights())
    out = a.unbatch(m.predict(StatefulDataset(a, workers=4), callbacks=[LaneResetCallback(a)], verbose=0))
    for s, o in zip(series, out):
        np.testing.assert_allclose(o, keras.ops.convert_to_numpy(ref(s[None, :-1]))[0], atol=1e-5)
