"""Proof against real Keras: arranged lanes + LaneResetCallback give exactly the whole-sequence results."""
import contextlib

import keras
import numpy as np
import pytest

import statebatch as sb
from statebatch.errors import BatchSizeError, ModelMismatchError, ParameterError, StatefulLayoutError
from statebatch.keras import (LaneResetCallback, StatefulDataset, WindowDataset, check_model, fit_stateful, reset_rows,
                              stateful_layers, stateful_scope)

from _backend import after_error_in_loop, raises_in_keras_loop, warns_on_tensorflow

pytestmark = pytest.mark.backend

F = 2
RNG = np.random.default_rng(42)


def rnn_model(cell, stateful, batch, units=4, T=None, seq=True, head=None):
    inp = keras.Input(batch_shape=(batch, T, F)) if stateful else keras.Input(shape=(T, F))
    out = cell(units, return_sequences=seq, stateful=stateful)(inp)
    if head:
        out = keras.layers.Dense(head)(out)
    return keras.Model(inp, out)


def twins(cell, B, T=None, seq=True, head=None):
    """A stateful model and a stateless one with the same weights."""
    keras.utils.set_random_seed(0)
    m = rnn_model(cell, True, B, T=T, seq=seq, head=head)
    ref = rnn_model(cell, False, None, T=None, seq=seq, head=head)
    ref.set_weights(m.get_weights())
    return m, ref


@pytest.mark.parametrize("cell", [keras.layers.LSTM, keras.layers.GRU], ids=["LSTM", "GRU"])
def test_continuity_one_series_in_lanes(cell):
    B, T = 4, 6
    series = RNG.normal(size=(4 * 6 * 5, F)).astype("float32")
    a = sb.arrange_stateful(series, T, B, targets=None, tail="drop")
    m, ref = twins(cell, B, T=T)
    pred = m.predict(StatefulDataset(a), callbacks=[LaneResetCallback(a)], verbose=0)
    lanes = a.batch_view.transpose(1, 0, 2, 3).reshape(B, -1, F)  # each lane as one sequence
    whole = ref.predict(lanes, verbose=0)  # (B, lane_len, units), zero initial state, one call
    by_lane = pred.reshape(a.n_batches, B, T, -1).transpose(1, 0, 2, 3).reshape(B, -1, pred.shape[-1])
    np.testing.assert_allclose(by_lane, whole, atol=1e-5)


@pytest.mark.parametrize("cell", [keras.layers.LSTM, keras.layers.GRU], ids=["LSTM", "GRU"])
def test_many_series_with_resets_equal_each_series_alone(cell):
    B, T = 3, 5
    lengths = [37, 12, 50, 23, 9, 31, 18]
    series = [RNG.normal(size=(n, F)).astype("float32") for n in lengths]
    a = sb.arrange_stateful(series, T, B, targets=None)
    assert a.resets[1:].any()  # lanes do move on to new series mid-epoch
    m, ref = twins(cell, B)
    cb = LaneResetCallback(a)
    per_series = a.unbatch(m.predict(StatefulDataset(a), callbacks=[cb], verbose=0))
    assert cb.resets_done == int(a.resets[1:].sum())
    for s, out in zip(series, per_series):
        alone = ref.predict(s[None], verbose=0)[0]
        np.testing.assert_allclose(out, alone, atol=1e-5)
    # Without per-lane resets the series that start mid-lane would inherit a stranger's state: refused...
    # (on TensorFlow the error arrives wrapped by tf.data, message first; see the README's Keras notes)
    with raises_in_keras_loop(StatefulLayoutError, "batch .* starts new series .* no LaneResetCallback"):
        m.predict(StatefulDataset(a), verbose=0)
    after_error_in_loop(m)
    with pytest.raises(StatefulLayoutError, match="LaneResetCallback"):  # the dataset itself, without tf.data
        ds = StatefulDataset(a)
        for k in range(len(ds)):
            ds[k]
    # ... and, when the caller says they reset lanes themselves but does not, the leak is real:
    m.predict(StatefulDataset(a, resets_by="manual"), verbose=0)  # warm the state
    reset_rows(m)
    stale = a.unbatch(m.predict(StatefulDataset(a, resets_by="manual"), verbose=0))
    starts_mid_lane = {int(a.plan().series[k, i]) for k, i in zip(*np.nonzero(a.resets[1:])) for k in [k + 1]}
    diffs = [np.abs(stale[s] - ref.predict(series[s][None], verbose=0)[0]).max() for s in starts_mid_lane]
    assert min(diffs) > 1e-3


@pytest.mark.parametrize("cell", [keras.layers.LSTM, keras.layers.GRU], ids=["LSTM", "GRU"])
def test_every_epoch_of_shuffled_jittered_lanes_equals_each_series_alone(cell):
    """Epoch-aware plans: repacked lanes and moving chunk edges, driven by the dataset and callback the
    way fit drives them; in every epoch each series' outputs equal the series run alone."""
    B, T = 3, 6
    lengths = [37, 12, 50, 23, 9, 31, 18, 26]
    series = [RNG.normal(size=(n, F)).astype("float32") for n in lengths]
    a = sb.arrange_stateful(series, T, B, targets=None, shuffle=True, seed=3, jitter=2)
    m, ref = twins(cell, B)  # time axis None: jittered batches have 4..6 steps
    alone = [ref.predict(s[None], verbose=0)[0] for s in series]
    cb = LaneResetCallback(a)
    cb.set_model(m)
    cb.on_train_begin()
    ds = StatefulDataset(a)
    packings, edges = set(), set()
    for epoch in range(3):
        cb.on_epoch_begin(epoch)  # what fit calls: the dataset now serves this epoch's plan
        assert a.epoch == epoch and len(ds) == a.n_batches
        outs = []
        for k in range(len(ds)):
            cb.on_train_batch_begin(k)
            outs.append(keras.ops.convert_to_numpy(m(ds[k][0])))
        plan = a.plan(epoch)
        packings.add(plan.series.tobytes())
        edges.add(tuple(o.shape[1] for o in outs))
        for s, (out, want) in enumerate(zip(a.unbatch(outs), alone)):
            np.testing.assert_allclose(out, want, atol=1e-5, err_msg=f"epoch {epoch}, series {s}")
    cb.on_train_end()
    assert len(packings) == 3 and len(edges) > 1  # the epochs really differ


def test_fit_follows_each_epochs_plan():
    lengths = [40, 17, 33, 25, 12, 29]
    series = [RNG.normal(size=(n, F)).astype("float32") for n in lengths]
    a = sb.arrange_stateful(series, 5, 2, targets="next", shuffle=True, seed=0, jitter=1)
    inp = keras.Input(batch_shape=(2, None, F))
    out = keras.layers.Dense(F)(keras.layers.LSTM(4, return_sequences=True, stateful=True)(inp))
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="mse")

    class Seen(keras.callbacks.Callback):
        log = []

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:  # after LaneResetCallback.on_epoch_begin has set the epoch
                self.log.append((len(self.log), a.epoch, a.plan().series.tobytes()))

    hist = model.fit(StatefulDataset(a), epochs=3, shuffle=False, verbose=0, callbacks=[LaneResetCallback(a), Seen()])
    assert [ae for _, ae, _ in Seen.log] == [0, 1, 2]
    assert len({packing for _, _, packing in Seen.log}) == 3  # each epoch trained on its own packing
    assert all(np.isfinite(hist.history["loss"]))


def test_seed_example_batch1_and_lanes_see_the_same_steps():
    """The seeds' classic: stateful LSTM, batch_size=1, fit one epoch at a time, reset after each epoch
    (Keras 3: batch_shape, epochs, layer.reset_state()). With lanes, B > 1 rows see the same steps."""
    series = np.sin(np.arange(241) * 0.2)[:, None].astype("float32")
    T = 8
    seen = {}

    class Recording(StatefulDataset):
        def __getitem__(self, k):
            batch = super().__getitem__(k)
            self.log.append((k, batch[0].copy()))
            return batch

    for B in (1, 4):
        a = sb.arrange_stateful(series, T, B, tail="drop")
        inp = keras.Input(batch_shape=(B, T, 1))
        model = keras.Model(inp, keras.layers.Dense(1)(keras.layers.LSTM(4, return_sequences=True, stateful=True)(inp)))
        model.compile(optimizer="adam", loss="mse")
        with warns_on_tensorflow(sb.StatebatchWarning) if B == 1 else contextlib.nullcontext():
            ds = Recording(a)
        ds.log = []
        for _epoch in range(2):  # the seeds' loop, Keras 3 spelling
            # fit_stateful = fit(shuffle=False) on a static-batch tf.data view of the same batches
            hist = fit_stateful(model, ds, epochs=1, verbose=0, reset_on_epoch_begin=False)
            for layer in stateful_layers(model):
                layer.reset_state()
            assert np.isfinite(hist.history["loss"][0])
        # the batches fit consumed in the last epoch, in order
        first = ds.log[-a.n_batches:]
        assert [k for k, _ in first] == list(range(a.n_batches))
        rows = np.stack([x for _, x in first])  # (n_batches, B, T, 1)
        seen[B] = [rows[:, i].reshape(-1) for i in range(B)]  # what lane i saw, in order
    overall = seen[1][0]
    np.testing.assert_array_equal(overall, series[: len(overall), 0])
    np.testing.assert_array_equal(np.concatenate(seen[4]), overall[: sum(len(s) for s in seen[4])])
    for lane in seen[4]:  # each lane is one contiguous piece of that same sequence, in order
        start = int(np.flatnonzero(np.isclose(overall, lane[0]))[0])
        np.testing.assert_array_equal(lane, overall[start: start + len(lane)])


def test_fit_with_shuffle_true_fails_with_clear_message():
    a = sb.arrange_stateful(RNG.normal(size=(400, F)).astype("float32"), 5, 4)
    m, _ = twins(keras.layers.LSTM, 4, T=5, head=F)
    m.compile(optimizer="adam", loss="mse")
    with raises_in_keras_loop(sb.ShuffleError, "stateful batches were requested out of order(.|\n)*shuffle=False"):
        m.fit(StatefulDataset(a), epochs=1, callbacks=[LaneResetCallback(a)], verbose=0)  # shuffle defaults True
    with pytest.raises(sb.ShuffleError):
        fit_stateful(m, a, shuffle=True)


def test_validation_state_is_kept_apart_from_training_state():
    B, T = 4, 5
    a = sb.arrange_stateful(RNG.normal(size=(600, F)).astype("float32"), T, B)
    train, val = a.split(0.25)
    m, _ = twins(keras.layers.LSTM, B, T=T, head=F)
    m.compile(optimizer="adam", loss="mse")
    layer = stateful_layers(m)[0]

    class Probe(keras.callbacks.Callback):
        # self.model first: on JAX it writes the trainer's live values back into the variables
        def states(self):
            return self.model and [keras.ops.convert_to_numpy(v.value) for v in layer.states]

        def on_train_batch_end(self, batch, logs=None):
            self.end_of_training = self.states()

        def on_test_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.val_start = self.states()

        def on_epoch_end(self, epoch, logs=None):
            self.after_validation = self.states()

    probe = Probe()
    fit_stateful(m, train, validation=val, epochs=1, verbose=0, callbacks=[probe])
    for s_train, s_val0, s_after in zip(probe.end_of_training, probe.val_start, probe.after_validation):
        assert np.abs(s_train).max() > 0
        # the holdout in time replays every series from its start (weight 0 until its held-out part): zero state
        assert np.abs(s_val0).max() == 0
        np.testing.assert_allclose(s_after, s_train)  # validation did not leak into training state
    # a separately arranged validation set starts from zero state
    other = sb.arrange_stateful(RNG.normal(size=(200, F)).astype("float32"), T, B)
    probe2 = Probe()
    fit_stateful(m, train, validation=other, epochs=1, verbose=0, callbacks=[probe2])
    assert all(np.abs(s).max() == 0 for s in probe2.val_start)
    # fit with validation but a callback that does not know it: a clear error
    with pytest.raises(ParameterError, match="validation_data=val"):
        m.fit(StatefulDataset(train), validation_data=StatefulDataset(val), shuffle=False, verbose=0,
              callbacks=[LaneResetCallback(train)])


def test_reset_rows_in_nested_stacked_and_bidirectional_layers():
    B, T = 3, 4
    inner_in = keras.Input(batch_shape=(B, T, 6))
    inner = keras.Model(inner_in, keras.layers.LSTM(5, stateful=True, return_sequences=True)(inner_in), name="inner")
    inp = keras.Input(batch_shape=(B, T, F))
    h = keras.layers.LSTM(6, stateful=True, return_sequences=True)(inp)
    h = inner(h)
    h = keras.layers.Bidirectional(keras.layers.GRU(3, stateful=True, return_sequences=True))(h)
    model = keras.Model(inp, h)
    layers = stateful_layers(model)
    assert len(layers) == 4  # LSTM, nested LSTM, forward GRU, backward GRU
    with stateful_scope(model):  # plain Keras predict keeps no state on JAX without it
        model.predict(RNG.normal(size=(B, T, F)).astype("float32"), batch_size=B, verbose=0)
    before = [keras.ops.convert_to_numpy(v) for layer in layers for v in layer.states]
    assert all(np.abs(s).max(axis=1).min() > 0 for s in before)  # every row holds state
    reset_rows(model, [1])
    after = [keras.ops.convert_to_numpy(v) for layer in layers for v in layer.states]
    for b, a_ in zip(before, after):
        assert np.all(a_[1] == 0)
        np.testing.assert_array_equal(a_[[0, 2]], b[[0, 2]])


def test_per_timestep_weights_ignore_padding_in_keras_loss():
    series = [RNG.normal(size=(n, F)).astype("float32") for n in (13, 7, 22)]
    a = sb.arrange_stateful(series, 5, 2)
    m, _ = twins(keras.layers.LSTM, 2, T=5, head=F)
    m.compile(optimizer="adam", loss="mse")
    kw = a.fit_kwargs()
    y_garbage = kw["y"].copy()
    y_garbage[kw["sample_weight"] == 0] = 1e6  # padded targets must not count
    cb = [LaneResetCallback(a)]
    clean = m.evaluate(kw["x"], kw["y"], sample_weight=kw["sample_weight"], batch_size=2, verbose=0, callbacks=cb)
    dirty = m.evaluate(kw["x"], y_garbage, sample_weight=kw["sample_weight"], batch_size=2, verbose=0, callbacks=cb)
    assert np.isclose(clean, dirty) and clean < 1e3
    with pytest.warns(sb.StatebatchWarning, match="padding .* diluted"):  # Keras' default reduction
        m.fit(**kw, epochs=1, verbose=0, callbacks=[LaneResetCallback(a)])
    # the mean over real steps: what use_real_step_loss switches to, checked against numpy
    assert sb.keras.use_real_step_loss(m) == 1
    pred = keras.ops.convert_to_numpy(m.predict(kw["x"], batch_size=2, verbose=0, callbacks=[LaneResetCallback(a)]))
    w = kw["sample_weight"]
    per_step = ((pred - kw["y"]) ** 2).mean(axis=-1)
    batch_means = [(per_step[i:i + 2] * w[i:i + 2]).sum() / w[i:i + 2].sum() for i in range(0, len(w), 2)]
    got = m.evaluate(kw["x"], kw["y"], sample_weight=w, batch_size=2, verbose=0, callbacks=cb)
    np.testing.assert_allclose(got, np.mean(batch_means), rtol=1e-4)
    assert got > clean * 1.1  # the diluted figure was lower (22% padding)


def test_model_checks_fail_early():
    a = sb.arrange_stateful(RNG.normal(size=(300, F)).astype("float32"), 5, 4)
    wrong_batch, _ = twins(keras.layers.LSTM, 8, T=5, head=F)
    with pytest.raises(BatchSizeError, match="batch_size=8|batch_shape"):
        check_model(wrong_batch, a)
    wrong_t, _ = twins(keras.layers.LSTM, 4, T=7, head=F)
    with pytest.raises(ModelMismatchError, match="timesteps=7"):
        check_model(wrong_t, a)
    stateless = rnn_model(keras.layers.LSTM, False, None, head=F)
    with pytest.raises(StatefulLayoutError):
        check_model(stateless, a)
    with pytest.raises(ParameterError, match="use_multiprocessing"):
        StatefulDataset(a, workers=2, use_multiprocessing=True)


def test_window_dataset_covers_windows_and_reshuffles():
    series = np.arange(300.0, dtype="float32").reshape(150, 2)
    w = sb.make_windows(series, 8, targets="next", batch_size=32, shuffle=True, seed=1)
    ds = WindowDataset(w)
    assert len(ds) == -(-w.n_windows // 32)
    first = np.concatenate([ds[k][0][:, 0, 0] for k in range(len(ds))])
    assert sorted(first.tolist()) == sorted(w.X[:, 0, 0].tolist())
    ds.on_epoch_end()
    second = np.concatenate([ds[k][0][:, 0, 0] for k in range(len(ds))])
    assert not np.array_equal(first, second) and sorted(first) == sorted(second)
    inp = keras.Input(shape=(8, 2))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(3)(inp)))
    model.compile(optimizer="adam", loss="mse")
    hist = model.fit(WindowDataset(w), epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])


def test_unbatch_after_predict_uses_the_epoch_predict_consumed():
    """predict on a dataset moves the result to its next epoch; unbatch still maps the outputs with the
    plan that produced the inputs (shuffled lanes, shuffled windows)."""
    lengths = [23, 9, 31, 18, 26]
    series = [RNG.normal(size=(n, F)).astype("float32") for n in lengths]
    a = sb.arrange_stateful(series, 5, 2, targets=None, shuffle=True, seed=0)
    m, ref = twins(keras.layers.GRU, 2)
    out = a.unbatch(m.predict(StatefulDataset(a), callbacks=[LaneResetCallback(a)], verbose=0))
    assert a.epoch == 1  # predict consumed epoch 0
    for s, o in zip(series, out):
        np.testing.assert_allclose(o, ref.predict(s[None], verbose=0)[0], atol=1e-5)
    x = np.arange(60.0, dtype="float32")[:, None]
    w = sb.make_windows(x, 4, batch_size=8, shuffle=True, seed=1)
    inp = keras.Input(shape=(4, 1))
    first_step = keras.Model(inp, keras.layers.Lambda(lambda t: t[:, 0, :])(inp))  # identity on the window start
    starts = w.unbatch(first_step.predict(WindowDataset(w), verbose=0))
    np.testing.assert_array_equal(starts[:, 0], np.arange(len(starts)))
    for _ in w:  # iterating an epoch by hand: same rule
        pass
    np.testing.assert_array_equal(w.unbatch([b[0][:, 0] for b in w.batches(w.epoch - 1)])[:, 0], np.arange(len(starts)))


def test_callback_refuses_another_arrangement_and_short_epochs():
    series = [RNG.normal(size=(n, F)).astype("float32") for n in (30, 12, 25, 18)]
    a = sb.arrange_stateful(series, 5, 2, targets="next")
    other = sb.arrange_stateful(series[:3], 5, 2, targets="next")
    assert other.n_batches != a.n_batches
    inp = keras.Input(batch_shape=(2, 5, F))
    model = keras.Model(inp, keras.layers.Dense(F)(keras.layers.GRU(3, return_sequences=True, stateful=True)(inp)))
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ParameterError, match="steps per epoch"):
        model.fit(StatefulDataset(other), callbacks=[LaneResetCallback(a)], shuffle=False, verbose=0)
    with pytest.raises(ParameterError, match="steps_per_epoch"):
        model.fit(StatefulDataset(a), callbacks=[LaneResetCallback(a)], shuffle=False, verbose=0,
                  steps_per_epoch=a.n_batches - 1)
    with pytest.raises(ParameterError, match="steps per epoch"):
        model.predict(StatefulDataset(other), callbacks=[LaneResetCallback(a)], verbose=0)
    hist = model.fit(StatefulDataset(a), callbacks=[LaneResetCallback(a)], shuffle=False, verbose=0, epochs=2)
    assert len(hist.history["loss"]) == 2


def stacked_twins(B):
    """A stateful two-layer model (LSTM inside a nested model, then a GRU) and its stateless twin."""
    def build(stateful):
        batch_shape = (B, None, F) if stateful else (None, None, F)
        inner_in = keras.Input(batch_shape=batch_shape)
        inner = keras.Model(inner_in, keras.layers.LSTM(5, stateful=stateful, return_sequences=True)(inner_in))
        inp = keras.Input(batch_shape=batch_shape)
        h = keras.layers.GRU(4, stateful=stateful, return_sequences=True)(inner(inp))
        return keras.Model(inp, keras.layers.Dense(F)(h))

    keras.utils.set_random_seed(1)
    m, ref = build(True), build(False)
    ref.set_weights(m.get_weights())
    return m, ref


def test_fit_per_batch_training_loss_equals_each_series_alone():
    """Training itself carries state (on JAX plain Keras does not): with a zero learning rate, the loss of
    every training batch equals the loss of the same weights run over each whole series from zero state,
    averaged over real steps only (padding is a third of the steps here; Keras' default would dilute it)."""
    B, T = 3, 5
    lengths = [31, 12, 44, 23, 9, 27, 18]
    series = [RNG.normal(size=(n, F)).astype("float32") for n in lengths]
    a = sb.arrange_stateful(series, T, B, targets="next")
    m, ref = stacked_twins(B)
    m.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    # the expected batches: each series' stateless outputs, laid out in lanes exactly as its inputs are
    alone = [keras.ops.convert_to_numpy(ref(s[None, :-1]))[0] for s in series]
    expected_pred = sb.arrange_stateful(alone, T, B, targets=None)
    assert expected_pred.n_batches == a.n_batches and a.padding_fraction > 0.1
    want = []
    for k in range(a.n_batches):
        _, y, w = a.batch(k)
        err = ((expected_pred.batch(k)[0] - y) ** 2).mean(axis=-1)  # mse per step, like Keras
        want.append(float((err * w).sum() / w.sum()))  # the mean over real steps (fit_stateful's reduction)

    class PerBatch(keras.callbacks.Callback):
        running = []

        def on_train_batch_end(self, batch, logs=None):
            self.running.append(float(logs["loss"]))

    rec = PerBatch()
    fit_stateful(m, a, epochs=2, verbose=0, callbacks=[rec])
    running = np.asarray(rec.running).reshape(2, a.n_batches)
    k = np.arange(a.n_batches)
    got = running * (k + 1) - np.concatenate([[0.0], running[0, :-1] * k[1:]])[None, :]  # running mean -> per batch
    got[1] = running[1] * (k + 1) - np.concatenate([[0.0], running[1, :-1] * k[1:]])
    np.testing.assert_allclose(got[0], want, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(got[1], want, rtol=2e-4, atol=1e-6)  # epoch 2 starts from zero state again


def test_fit_stateful_val_loss_is_the_mean_over_held_out_steps():
    # a validation arrangement replays each series from its start with weight 0: most of its batches
    # hold no held-out step, and Keras' per-batch mean would count each as a loss of 0 (found by a
    # newcomer: val_loss 0.51 against the true 1.26)
    rng = np.random.default_rng(0)
    vowels = sb.load_japanese_vowels()
    series = [s.astype("float32") for s in vowels["X_train"][:10]]
    arranged = sb.arrange_stateful(series, 4, 3, targets="next", shuffle=True, seed=0)
    train, val = arranged.split(0.2)
    w = val.sample_weight.reshape(val.n_batches, val.batch_size, -1)
    assert (w.sum(axis=(1, 2)) == 0).any() and len(np.unique(w.sum(axis=(1, 2)))) > 2  # the case that failed
    keras.utils.set_random_seed(int(rng.integers(1000)))
    inp = keras.Input(batch_shape=(3, 4, 12))
    h = keras.layers.GRU(8, stateful=True, return_sequences=True)(inp)
    model = keras.Model(inp, keras.layers.Dense(12)(h))
    model.compile("adam", "mse", weighted_metrics=["mse"])
    hist = fit_stateful(model, train, validation=val, epochs=2, verbose=0)
    # by hand: the trained weights on the validation lanes, from zero state, lane by lane
    pred = model.predict(StatefulDataset(val), callbacks=[LaneResetCallback(val)], verbose=0)
    err = ((keras.ops.convert_to_numpy(pred) - val.y) ** 2).mean(axis=-1)
    by_hand = float((err * val.sample_weight).sum() / val.sample_weight.sum())
    np.testing.assert_allclose(hist.history["val_loss"][-1], by_hand, rtol=2e-5)
    np.testing.assert_allclose(hist.history["val_mse"][-1], by_hand, rtol=2e-5)
    assert hist.history["loss"][-1] > 0
