"""StateStore against the real thing: the same weights run on each whole series in one call.

The reference is a plain (stateful=False) Keras model of the same layers with the trained model's
weights copied in, called once per whole series from zero state: it shares no code with statebatch.
Run under every backend (``KERAS_BACKEND=jax`` / ``torch`` with their venvs).
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from keras import layers

import statebatch as sb
from statebatch.errors import (DataValueError, ModelMismatchError, ParameterError, ShapeError, StatefulLayoutError,
                               StoreError, UnknownSeriesError, UnsupportedModelError)
from statebatch.serving.statestore import StateStore

pytestmark = pytest.mark.backend

F = 2
TOL = 1e-5
RNNS = {"lstm": layers.LSTM, "gru": layers.GRU, "simple": layers.SimpleRNN}


def build(kind="lstm", *, stateful=True, batch=8, style="sequential", head_seq=True, out=F):
    """Two stacked recurrent layers and a Dense head; the same layers stateless for the reference."""
    cls = RNNS[kind]
    stack = [cls(6, stateful=stateful, return_sequences=True, name="rnn_0"),
             cls(5, stateful=stateful, return_sequences=head_seq, name="rnn_1"),
             layers.Dense(out, name="head")]
    inp = keras.Input(batch_shape=(batch if stateful else None, None, F))
    if style == "sequential":
        return keras.Sequential([inp, *stack])
    x = inp
    for layer in stack:
        x = layer(x)
    return keras.Model(inp, x)


def reference(model, **kw):
    """The model's weights in a plain stateless model (free batch axis): one call = one whole series."""
    plain = build(stateful=False, **kw)
    plain.set_weights(model.get_weights())

    def one(x):
        return np.asarray(keras.ops.convert_to_numpy(plain(x[None].astype("float32"))))[0]

    one.batch = lambda X: np.asarray(keras.ops.convert_to_numpy(plain(X)))
    return one


def whole_runs(ref, series):
    """``ref`` on every whole series, in one call: the series end-padded to the longest (a forward RNN's
    outputs at real steps never see later padding), so compiled backends trace one shape, not one per length."""
    longest = max(len(x) for x in series)
    padded = np.zeros((len(series), longest, F), dtype="float32")
    for i, x in enumerate(series):
        padded[i, :len(x)] = x
    out = ref.batch(padded)
    return [out[i, :len(x)] if out.ndim == 3 else None for i, x in enumerate(series)]


def many_series(n=120, lo=4, hi=60, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.permutation(np.arange(lo, lo + n) % (hi - lo) + lo)  # many different lengths
    return [np.cumsum(rng.normal(size=(L, F)), axis=0).astype("float32") * 0.1 for L in lengths]


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(7)


@pytest.mark.parametrize("kind,style", [("lstm", "sequential"), ("gru", "functional"), ("simple", "sequential")])
def test_warm_then_steps_equal_the_whole_series_run(kind, style):
    model = build(kind, style=style)
    ref = reference(model, kind=kind, style=style)
    series = many_series()
    rng = np.random.default_rng(1)
    cut = [int(rng.integers(1, len(s))) for s in series]  # at least one step to warm, one to step
    ids = [f"s{i}" for i in range(len(series))]
    store = StateStore(model)
    warm = store.warm(ids, [s[:c] for s, c in zip(series, cut)])
    whole = whole_runs(ref, series)
    diffs = [np.abs(warm[i] - whole[i][cut[i] - 1]).max() for i in range(len(series))]
    assert max(diffs) <= TOL
    # then step by step: each round a random subset of the series that still have data, in a random order
    pos = list(cut)
    worst = 0.0
    while True:
        live = [i for i in range(len(series)) if pos[i] < len(series[i])]
        if not live:
            break
        chosen = rng.permutation(live)[: max(1, len(live) * 2 // 3)]
        pred = store.step([ids[i] for i in chosen], np.stack([series[i][pos[i]] for i in chosen]))
        for j, i in enumerate(chosen):
            worst = max(worst, float(np.abs(pred[j] - whole[i][pos[i]]).max()))
            pos[i] += 1
    assert worst <= TOL
    np.testing.assert_array_equal(store.steps_seen(ids), [len(s) for s in series])


def test_many_to_one_head_and_several_steps_per_call():
    model = build("lstm", head_seq=False)
    ref_seq = build(stateful=False)  # same weights, sequence outputs: output t = many-to-one after t+1 steps
    ref_seq.set_weights(model.get_weights())
    series = many_series(n=30, lo=6, hi=20, seed=3)
    ids = list(range(30))
    store = StateStore(model)
    store.warm(ids, [s[:3] for s in series])
    pred = store.step(ids, np.stack([s[3:5] for s in series]))  # two steps at once
    for i, s in enumerate(series):
        full = np.asarray(keras.ops.convert_to_numpy(ref_seq(s[None, :5])))[0, -1]
        np.testing.assert_allclose(pred[i], full, atol=TOL)


def test_step_leaves_other_series_untouched_and_padding_never_advances_a_state():
    model = build("gru")
    series = many_series(n=10, seed=4)
    store = StateStore(model)
    store.warm(list(range(10)), series)
    before = store.states(list(range(10)))
    store.step([3, 7], np.ones((2, F), "float32"))
    after = store.states(list(range(10)))
    for b, a in zip(before, after):
        untouched = [i for i in range(10) if i not in (3, 7)]
        np.testing.assert_array_equal(a[untouched], b[untouched])
        assert np.abs(a[[3, 7]] - b[[3, 7]]).max() > 0
    # one short series warmed alone equals the same series warmed among long ones (masked padding)
    alone = StateStore(model)
    alone.warm(["x"], [series[0][:3]])
    mixed = StateStore(model)
    mixed.warm(["x", "long"], [series[0][:3], series[1]])
    for a, m in zip(alone.states(["x"]), mixed.states(["x"])):
        np.testing.assert_allclose(a, m, atol=TOL)


def test_forecast_equals_stepping_with_its_own_predictions_and_leaves_the_store_alone():
    model = build("lstm")
    series = many_series(n=40, seed=5)
    ids = list(range(40))
    store = StateStore(model)
    store.warm(ids, series)
    states0, pred0 = store.states(ids), store.last_prediction(ids)
    fc = store.forecast(ids, 6)
    assert fc.shape == (40, 6, F)
    for a, b in zip(store.states(ids), states0):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(store.last_prediction(ids), pred0)
    # the same by hand: step with the last prediction, six times
    manual, p = [], store.last_prediction(ids)
    for _ in range(6):
        manual.append(p)
        p = store.step(ids, p)
    np.testing.assert_allclose(np.stack(manual, axis=1), fc, atol=TOL)
    # advance=True ends where stepping ended
    other = StateStore(model)
    other.warm(ids, series)
    np.testing.assert_allclose(other.forecast(ids, 6, advance=True), fc, atol=TOL)
    for a, b in zip(other.states(ids), store.states(ids)):
        np.testing.assert_allclose(a, b, atol=TOL)
    np.testing.assert_allclose(other.last_prediction(ids), store.last_prediction(ids), atol=TOL)


def test_save_load_and_continue_equals_never_stopping(tmp_path):
    model = build("lstm", style="functional")
    series = many_series(n=110, seed=6)
    ids = [f"id-{i}" for i in range(110)]
    rng = np.random.default_rng(0)
    new = rng.normal(size=(5, 110, F)).astype("float32")
    never = StateStore(model)
    never.warm(ids, series)
    path = tmp_path / "states.npz"
    never.save(path)
    expected = [never.step(ids, new[k]) for k in range(5)]
    loaded = StateStore.load(path, model)
    assert loaded.ids == ids
    got = [loaded.step(ids, new[k]) for k in range(5)]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
    assert [p.name for p in tmp_path.iterdir()] == ["states.npz"]  # no temporary file left behind


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    model = build("gru")
    store = StateStore(model)
    store.warm([1, 2], many_series(n=2, seed=7))
    path = tmp_path / "s.npz"
    store.save(path)
    old = path.read_bytes()
    store.step([1, 2], np.ones((2, F), "float32"))

    def dies(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr("statebatch.serving.files.os.replace", dies)
    with pytest.raises(StoreError, match="cannot write"):
        store.save(path)
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["s.npz"]


def test_load_refuses_a_file_of_another_model_and_damaged_files(tmp_path):
    model = build("lstm")
    store = StateStore(model)
    store.warm(["a"], [np.zeros((3, F), "float32")])
    path = store.save(tmp_path / "s.npz")
    with pytest.raises(StoreError, match="another model"):
        StateStore.load(path, build("gru"))
    retrained = build("lstm")  # same architecture, other weights
    with pytest.raises(StoreError, match="other weight values"):
        StateStore.load(path, retrained)
    assert StateStore.load(path, retrained, check_weights=False).ids == ["a"]
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(StoreError, match="not a readable"):
        StateStore.load(cut, model)
    with pytest.raises(StoreError, match="no state store file"):
        StateStore.load(tmp_path / "missing.npz", model)


def test_bad_inputs_are_statebatch_errors():
    model = build("lstm")
    store = StateStore(model)
    store.warm(["a", "b"], [np.zeros((3, F), "float32"), np.zeros((5, F), "float32")])
    with pytest.raises(UnknownSeriesError, match="not in the store.*'zz'"):
        store.step(["a", "zz"], np.zeros((2, F)))
    with pytest.raises(KeyError):  # also a KeyError, like a dict
        store.forecast(["zz"], 2)
    with pytest.raises(ModelMismatchError, match="3 features per step but the model takes 2"):
        store.step(["a"], np.zeros((1, 3)))
    with pytest.raises(DataValueError, match="NaN"):
        store.step(["a", "b"], np.array([[0.0, np.nan], [0.0, 0.0]]))
    with pytest.raises(DataValueError, match="NaN"):
        store.warm(["c"], [np.array([[np.inf, 0.0]])])
    assert "c" not in store  # nothing half-done
    with pytest.raises(ParameterError, match="repeat"):
        store.step(["a", "a"], np.zeros((2, F)))
    with pytest.raises(ShapeError, match="shape"):
        store.step(["a", "b"], np.zeros((3, F)))
    with pytest.raises(ParameterError, match="single id"):
        store.step("a", np.zeros((1, F)))
    with pytest.raises(ShapeError, match="2 ids but 1 history"):
        store.warm(["x", "y"], [np.zeros((3, F))])
    with pytest.raises(ParameterError, match="str or int"):
        store.warm([1.5], [np.zeros((3, F))])
    with pytest.raises(ParameterError):
        store.forecast(["a"], 0)
    no_state = keras.Sequential([keras.Input(batch_shape=(4, None, F)), layers.LSTM(3), layers.Dense(F)])
    with pytest.raises(StatefulLayoutError, match="no stateful recurrent layer"):
        StateStore(no_state)
    inp = keras.Input(batch_shape=(4, None, F))
    bi = keras.Model(inp, layers.Dense(F)(layers.Bidirectional(layers.GRU(3, stateful=True))(inp)))
    with pytest.raises(UnsupportedModelError, match="backward"):
        StateStore(bi)
    one_out = StateStore(build("gru", out=1))
    one_out.warm(["a"], [np.zeros((3, F))])
    with pytest.raises(ModelMismatchError, match="cannot be fed back"):
        one_out.forecast(["a"], 3)


def test_reset_drop_and_idle_eviction_with_a_fake_clock():
    now = [0.0]
    model = build("simple")
    store = StateStore(model, idle_timeout=10.0, clock=lambda: now[0])
    series = many_series(n=4, seed=8)
    store.warm(["a", "b", "c", "d"], series)
    now[0] = 5.0
    store.step(["a", "b"], np.zeros((2, F), "float32"))
    now[0] = 12.0
    store.step(["a"], np.zeros((1, F), "float32"))  # c and d idle for 12 s > 10 s: evicted first
    assert store.ids == ["a", "b"]
    with pytest.raises(UnknownSeriesError, match="evicted"):
        store.step(["c"], np.zeros((1, F)))
    store.reset(["b"])
    assert all(np.all(s == 0) for s in store.states(["b"]))
    assert not all(np.all(s == 0) for s in store.states(["a"]))
    store.drop(["a"])
    assert "a" not in store and len(store) == 1
    store.warm(["e"], [series[0]])  # the freed row is reused, clean
    fresh = StateStore(model)
    fresh.warm(["e"], [series[0]])
    for a, b in zip(store.states(["e"]), fresh.states(["e"])):
        np.testing.assert_allclose(a, b, atol=TOL)
    assert store.evict_idle(max_idle=8.0) == []  # b idle for 7 s, e for 0 s
    now[0] = 100.0
    assert sorted(store.evict_idle()) == ["b", "e"]


def test_public_names_are_reexported_lazily():
    assert sb.StateStore is StateStore
    from statebatch.serving.inference import inference_model

    assert sb.inference_model is inference_model


def test_the_saved_file_still_loads_after_the_original_model_ran_on():
    model = build("lstm")
    store = StateStore(model)
    store.warm(["a"], [np.ones((3, F), "float32")])
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = store.save(os.path.join(d, "s.npz"))
        model(np.ones((8, 4, F), "float32"))  # moves the original's own state variables, not its weights
        assert StateStore.load(path, model).ids == ["a"]


def test_fit_stateful_then_the_store_and_the_holdout_continue_from_training():
    from statebatch.serving.inference import inference_model, state_spec
    from statebatch.keras import fit_stateful

    series = many_series(n=40, lo=20, hi=80, seed=9)
    a = sb.arrange_stateful(series, 10, 8)
    train, val = a.split(0.2)
    keep = [len(s) - int(np.ceil(len(s) * 0.2)) for s in series]
    model = keras.Sequential([keras.Input(batch_shape=(8, None, F)),
                              layers.LSTM(6, stateful=True, return_sequences=True, use_cudnn=False, name="rnn_0"),
                              layers.LSTM(5, stateful=True, return_sequences=True, use_cudnn=False, name="rnn_1"),
                              layers.Dense(F, name="head")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    fit_stateful(model, train, validation=val, epochs=2, verbose=0)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(model.get_weights(), before))  # it trained
    ref = reference(model)  # the trained weights on each whole series, one call
    whole = whole_runs(ref, series)
    # carry on: each series in the store at the end of its training part, then its held-out steps one by one
    store = StateStore(model)
    ids = list(train.series_ids)
    p = store.warm_from(train)
    np.testing.assert_allclose(p, np.stack([whole[i][keep[i] - 1] for i in range(40)]), atol=TOL)
    worst = 0.0
    for t in range(max(len(s) - k for s, k in zip(series, keep))):
        live = [i for i in range(40) if keep[i] + t < len(series[i])]
        out = store.step([ids[i] for i in live], np.stack([series[i][keep[i] + t] for i in live]))
        worst = max(worst, max(float(np.abs(out[j] - whole[i][keep[i] + t]).max()) for j, i in enumerate(live)))
    assert worst <= TOL
    # the holdout in time: run val's batches lane by lane (states carried, zeroed at resets) with the same
    # weights; on every weighted step the output equals the whole-series run
    twin = inference_model(model)
    spec = state_spec(twin)
    states = spec.zeros(8)
    outs = []
    for k in range(val.n_batches):
        X = val.batch(k)[0]
        reset = np.asarray(val.resets[k])
        states = [np.where(reset[:, None], 0, s) for s in states]
        y, *states = [np.asarray(keras.ops.convert_to_numpy(o)) for o in twin([X, *states])]
        outs.append(y)
    per_series = val.unbatch(np.concatenate(outs))
    weights = val.unbatch(val.sample_weight[..., None])
    for i in range(40):
        w = weights[i][:, 0] > 0
        assert w.sum() == len(series[i]) - keep[i]
        np.testing.assert_allclose(per_series[i][w], whole[i][: len(w)][w], atol=TOL)
