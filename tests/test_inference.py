"""inference_model: a trained stateful model at any batch size, or with explicit states, gives the
outputs and states of the original run on the same data (ported from the twin prototype's tests).

Run under every backend: ``KERAS_BACKEND=jax /work/main/.venv-jax/bin/python -m pytest tests/test_inference.py``.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
from keras import layers

from statebatch.errors import ParameterError, StatefulLayoutError, UnsupportedModelError
from statebatch.serving.inference import get_states, inference_model, reset_states, set_states, state_spec

pytestmark = pytest.mark.backend


def stateless_twin(model, **kw):
    twin = inference_model(model, **kw)
    return twin, state_spec(twin)


def batch_size_twin(model, batch_size, *, share_weights=False):
    return inference_model(model, batch_size, share_weights=share_weights)


TOL = 1e-5
B, T, F, CHUNK, UNITS = 3, 12, 2, 4, 3
RNNS = {"lstm": layers.LSTM, "gru": layers.GRU, "simple": layers.SimpleRNN}


def to_np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def assert_close(a, b, label, tol=TOL):
    a, b = to_np(a), to_np(b)
    assert a.shape == b.shape, (label, a.shape, b.shape)
    d = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert d <= tol, f"{label}: max abs diff {d}"


def data(n=B, t=T, seed=0):
    return np.random.default_rng(seed).normal(size=(n, t, F)).astype("float32")


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)


# ----------------------------------------------------------------------------- model zoo


def rnn_stack(kind, n_layers, head, **kw):
    cls = RNNS[kind]
    out = []
    for i in range(n_layers):
        seq = i < n_layers - 1 or head == "seq"
        out.append(cls(UNITS, stateful=True, return_sequences=seq, name=f"{kind}_{i}", **kw))
    out.append(layers.TimeDistributed(layers.Dense(2), name="head") if head == "seq"
               else layers.Dense(2, name="head"))
    return out


def make_model(kind="lstm", n_layers=1, head="seq", style="sequential", batch=B):
    stack = rnn_stack(kind, n_layers, head)
    if style == "sequential":
        return keras.Sequential([keras.Input(batch_shape=(batch, None, F)), *stack])
    x = inp = keras.Input(batch_shape=(batch, None, F))
    for layer in stack:
        x = layer(x)
    return keras.Model(inp, x)


def make_bidirectional(head="seq", batch=B, kind="lstm"):
    inp = keras.Input(batch_shape=(batch, None, F))
    x = layers.Bidirectional(RNNS[kind](UNITS, stateful=True, return_sequences=True),
                             name="bi")(inp)
    x = layers.GRU(UNITS, stateful=True, return_sequences=head == "seq", name="top")(x)
    y = layers.TimeDistributed(layers.Dense(2))(x) if head == "seq" else layers.Dense(2)(x)
    return keras.Model(inp, y)


def make_nested(batch=B):
    sub_in = keras.Input(batch_shape=(batch, None, 4))
    sub_x = layers.GRU(UNITS, stateful=True, return_sequences=True, name="inner_gru")(sub_in)
    sub_x = layers.Dense(3, activation="tanh", name="inner_dense")(sub_x)
    sub = keras.Model(sub_in, sub_x, name="encoder")
    inp = keras.Input(batch_shape=(batch, None, F))
    x = layers.Dense(4, name="proj")(inp)
    x = sub(x)
    x = layers.LSTM(UNITS, stateful=True, return_sequences=True, name="outer_lstm")(x)
    y = layers.TimeDistributed(layers.Dense(1), name="out")(x)
    return keras.Model(inp, y)


def make_nested_sequential(batch=B):
    inner = keras.Sequential([keras.Input(batch_shape=(batch, None, F)),
                              layers.SimpleRNN(UNITS, stateful=True, return_sequences=True,
                                               name="inner_rnn")], name="inner_seq")
    return keras.Sequential([keras.Input(batch_shape=(batch, None, F)), inner,
                             layers.LSTM(UNITS, stateful=True, name="top_lstm"),
                             layers.Dense(1, name="out")])


MATRIX = [(k, n, h, "sequential") for k in RNNS for n in (1, 2) for h in ("seq", "last")]
MATRIX += [("lstm", 2, "seq", "functional"), ("gru", 1, "last", "functional")]
ZOO = {f"{k}-{n}-{h}-{s}": (lambda k=k, n=n, h=h, s=s: (make_model(k, n, h, s), h))
       for k, n, h, s in MATRIX}
ZOO["nested-functional"] = lambda: (make_nested(), "seq")
ZOO["nested-sequential"] = lambda: (make_nested_sequential(), "last")
UNIDIRECTIONAL = sorted(ZOO)
# Every model kind runs on TensorFlow; JAX and torch run a representative set (each cell type, one and
# two layers, both heads, functional and nested), to keep CI's three backend runs short.
CORE = {"lstm-2-seq-sequential", "gru-1-last-sequential", "simple-2-seq-sequential", "lstm-2-seq-functional",
        "gru-1-last-functional", "nested-functional", "nested-sequential"}
ZOO_PARAMS = [n if n in CORE else pytest.param(n, marks=pytest.mark.exhaustive) for n in UNIDIRECTIONAL]


# ----------------------------------------------------------------------------- helpers


def run_chunked(model, X, chunk=CHUNK):
    """Stateful original over lanes: series i in row i, consecutive chunks in order."""
    reset_states(model)
    return [to_np(model(X[:, t:t + chunk], training=False)) for t in range(0, X.shape[1], chunk)]


def twin_call(twin, x, states):
    out = twin([x, *states])
    n = len(states)
    ys = out[: len(out) - n]
    return [to_np(y) for y in ys], [to_np(s) for s in out[len(out) - n:]]


# ----------------------------------------------------------------------------- equivalence


@pytest.mark.parametrize("name", ZOO_PARAMS)
def test_whole_series_equals_stateful_chunks(name):
    model, head = ZOO[name]()
    twin, spec = stateless_twin(model)
    X = data()
    chunks = run_chunked(model, X)
    final = get_states(model)
    for i in range(B):
        if head == "seq":
            (y,), states = twin_call(twin, X[i:i + 1], spec.zeros(1))
            assert_close(y[0], np.concatenate(chunks, axis=1)[i], f"whole/{name}")
        else:  # many-to-one: one output per chunk = output after that prefix
            for c, t_end in enumerate(range(CHUNK, T + 1, CHUNK)):
                (y,), states = twin_call(twin, X[i:i + 1, :t_end], spec.zeros(1))
                assert_close(y[0], chunks[c][i], f"whole/{name}")
        for s_twin, s_orig in zip(states, final):
            assert_close(s_twin[0], s_orig[i], f"final_state/{name}")


@pytest.mark.parametrize("name", ZOO_PARAMS)
def test_step_by_step_equals_whole_series(name):
    model, head = ZOO[name]()
    twin, spec = stateless_twin(model)
    X = data(n=4, seed=1)
    (y_all,), s_all = twin_call(twin, X, spec.zeros(4))
    states, ys = spec.zeros(4), []
    for t in range(T):
        (y,), states = twin_call(twin, X[:, t:t + 1], states)
        ys.append(y)
    if head == "seq":
        assert_close(np.concatenate(ys, axis=1), y_all, f"steps/{name}")
    else:
        assert_close(ys[-1], y_all, f"steps/{name}")
    for a, b in zip(states, s_all):
        assert_close(a, b, f"steps_state/{name}")


@pytest.mark.parametrize("name", ["lstm-2-seq-sequential", "gru-1-last-functional",
                                  "simple-1-seq-sequential", "nested-functional"])
def test_mixed_batch_gather_scatter(name):
    """Series at different positions share one batch for a step; results match solo runs."""
    model, head = ZOO[name]()
    twin, spec = stateless_twin(model)
    n_series = 5
    X = data(n=n_series, seed=2)
    done = [3, 7, 0, 11, 5]  # steps already consumed per series
    store = spec.zeros(n_series)  # one row per series
    for i, k in enumerate(done):
        if k:
            _, s = twin_call(twin, X[i:i + 1, :k], spec.zeros(1))
            for arr, row in zip(store, s):
                arr[i] = row[0]
    rows = np.array([3, 0, 4, 2])  # the series that get a new observation now, any order
    x_step = np.stack([X[i, done[i]:done[i] + 1] for i in rows])
    (y,), new = twin_call(twin, x_step, [arr[rows] for arr in store])
    for arr, upd in zip(store, new):  # scatter back
        arr[rows] = upd
    for j, i in enumerate(rows):
        (y_solo,), s_solo = twin_call(twin, X[i:i + 1, :done[i] + 1], spec.zeros(1))
        y_solo_last = y_solo[:, -1] if head == "seq" else y_solo
        y_mixed = y[j:j + 1, -1] if head == "seq" else y[j:j + 1]
        assert_close(y_mixed, y_solo_last, f"mixed/{name}")
        for arr, s in zip(store, s_solo):
            assert_close(arr[i:i + 1], s, f"mixed_state/{name}")
    untouched = 1  # series 1 was not in the batch: its row must not have changed
    _, s1 = twin_call(twin, X[1:2, :done[1]], spec.zeros(1))
    for arr, s in zip(store, s1):
        assert_close(arr[untouched:untouched + 1], s, f"mixed_untouched/{name}")


@pytest.mark.parametrize("name", ["lstm-1-seq-sequential", "gru-2-last-sequential",
                                  "simple-2-seq-sequential", "nested-functional",
                                  "nested-sequential"])
def test_state_handover_from_stateful_original(name):
    model, head = ZOO[name]()
    twin, spec = stateless_twin(model)
    X = data(seed=3)
    reset_states(model)
    for t in range(0, 2 * CHUNK, CHUNK):  # two chunks on the training model
        model(X[:, t:t + CHUNK], training=False)
    handed = get_states(model)
    assert [a.shape for a in handed] == [(B,) + s.shape for s in spec]
    nxt = X[:, 2 * CHUNK:3 * CHUNK]
    for i in range(B):  # each lane continues alone in the twin...
        (y,), s = twin_call(twin, nxt[i:i + 1], [a[i:i + 1] for a in handed])
        (y_ref,), s_ref = twin_call(twin, X[i:i + 1, :3 * CHUNK], spec.zeros(1))
        y_ref = y_ref[:, 2 * CHUNK:] if head == "seq" else y_ref
        assert_close(y, y_ref, f"handover/{name}")
        for a, b in zip(s, s_ref):
            assert_close(a, b, f"handover_state/{name}")
    # ...and all lanes at once continue like the original itself.
    (y_all,), _ = twin_call(twin, nxt, handed)
    assert_close(y_all, model(nxt, training=False), f"handover_batch/{name}")


# ----------------------------------------------------------------------------- Bidirectional


@pytest.mark.parametrize("head", ["seq", "last"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional(head, kind):
    model = make_bidirectional(head, kind=kind)
    twin, spec = stateless_twin(model)
    assert [s.direction for s in spec][:2 if kind == "gru" else 4] == (
        ["forward", "backward"] if kind == "gru" else ["forward", "forward", "backward",
                                                      "backward"])
    assert not spec.streamable and not spec[0].streamable and spec[-1].streamable
    X = data(seed=4)
    # Whole series: original in one chunk == twin in one call.
    (whole,) = run_chunked(model, X, chunk=T)
    (y,), s = twin_call(twin, X, spec.zeros(B))
    assert_close(y, whole, f"bidir_whole/{kind}-{head}")
    for a, b in zip(s, get_states(model)):
        assert_close(a, b, f"bidir_whole_state/{kind}-{head}")
    # Chunked: only the same chunking matches.
    chunks = run_chunked(model, X, chunk=CHUNK)
    states = spec.zeros(B)
    for c, t in enumerate(range(0, T, CHUNK)):
        (y,), states = twin_call(twin, X[:, t:t + CHUNK], states)
        assert_close(y, chunks[c], f"bidir_chunks/{kind}-{head}")
    # ...and chunked differs from whole (documented, not a bug).
    if head == "seq":
        assert np.max(np.abs(np.concatenate(chunks, axis=1) - whole)) > 1e-4


# ----------------------------------------------------------------------------- batch-size twin


@pytest.mark.parametrize("name", ["lstm-2-seq-sequential", "gru-1-last-functional",
                                  "nested-functional", "nested-sequential"])
@pytest.mark.parametrize("share", [False, True])
def test_batch_size_twin_one_lane(name, share):
    model, head = ZOO[name]()
    one = batch_size_twin(model, 1, share_weights=share)
    assert tuple(one.inputs[0].shape)[0] == 1
    assert state_spec(one) == state_spec(model)
    orig_vars = {id(v) for v in model.trainable_weights}
    shared = [id(v) in orig_vars for v in one.trainable_weights]
    assert all(shared) if share else not any(shared)
    X = data(seed=5)
    reset_states(model)
    model(X[:, :CHUNK], training=False)
    model(X[:, CHUNK:2 * CHUNK], training=False)
    lanes = get_states(model)
    y_orig = to_np(model(X[:, 2 * CHUNK:3 * CHUNK], training=False))
    after = get_states(model)
    for i in range(B):
        set_states(one, [a[i:i + 1] for a in lanes])
        y = one(X[i:i + 1, 2 * CHUNK:3 * CHUNK], training=False)
        assert_close(y, y_orig[i:i + 1], f"bs1/{name}")
        for a, b in zip(get_states(one), after):
            assert_close(a, b[i:i + 1], f"bs1_state/{name}")
    # and from zero state, a single series run chunk by chunk == twin on the whole series
    reset_states(one)
    outs = [to_np(one(X[:1, t:t + CHUNK])) for t in range(0, T, CHUNK)]
    stateless, spec = stateless_twin(model)
    (y_whole,), _ = twin_call(stateless, X[:1], spec.zeros(1))
    assert_close(outs[-1] if head == "last" else np.concatenate(outs, axis=1), y_whole,
                 f"bs1_fresh/{name}")


def test_batch_size_twin_other_size_and_bidirectional():
    model = make_bidirectional("seq")
    five = batch_size_twin(model, 5)
    X = data(n=5, seed=6)
    ref, spec = stateless_twin(model)
    states = spec.zeros(5)
    reset_states(five)
    for t in range(0, T, CHUNK):
        (y,), states = twin_call(ref, X[:, t:t + CHUNK], states)
        assert_close(five(X[:, t:t + CHUNK]), y, "bs5_bidir")
    for a, b in zip(get_states(five), states):
        assert_close(a, b, "bs5_bidir_state")
    with pytest.raises(ParameterError):
        batch_size_twin(model, 0)


# ----------------------------------------------------------------------------- misc behaviour


def test_shared_weights_follow_training_and_copies_do_not():
    model, _ = ZOO["lstm-1-seq-sequential"]()
    shared, spec = stateless_twin(model)
    copied, _ = stateless_twin(model, share_weights=False)
    X = data(seed=7)
    (before,), _ = twin_call(copied, X, spec.zeros(B))
    model.set_weights([w * 1.5 for w in model.get_weights()])
    (y_shared,), _ = twin_call(shared, X, spec.zeros(B))
    (y_copied,), _ = twin_call(copied, X, spec.zeros(B))
    (whole,) = run_chunked(model, X, chunk=T)
    assert_close(y_shared, whole, "shared_follows")
    assert_close(y_copied, before, "copy_frozen")
    assert np.max(np.abs(y_copied - whole)) > 1e-3


def test_predict_on_batch_matches_eager_for_several_batch_sizes():
    model, _ = ZOO["lstm-2-seq-sequential"]()
    twin, spec = stateless_twin(model)
    for n in (1, 7, 16):
        X = data(n=n, seed=n)
        eager = twin([X[:, :1], *spec.zeros(n)])
        compiled = twin.predict_on_batch([X[:, :1], *spec.zeros(n)])
        for a, b in zip(eager, compiled):
            assert_close(a, b, "predict_on_batch")


def test_masking_passes_through():
    inp = keras.Input(batch_shape=(B, None, F))
    x = layers.Masking(0.0)(inp)
    x = layers.LSTM(UNITS, stateful=True, name="m_lstm")(x)
    model = keras.Model(inp, layers.Dense(1)(x))
    twin, spec = stateless_twin(model)
    X = data(n=1, seed=8)
    padded = np.concatenate([X, np.zeros((1, 3, F), "float32")], axis=1)
    (y1,), s1 = twin_call(twin, X, spec.zeros(1))
    (y2,), s2 = twin_call(twin, padded, spec.zeros(1))
    assert_close(y1, y2, "mask")
    for a, b in zip(s1, s2):
        assert_close(a, b, "mask_state")


def test_return_state_original_and_spec_details():
    inp = keras.Input(batch_shape=(B, None, F))
    seq, h, c = layers.LSTM(UNITS, stateful=True, return_sequences=True, return_state=True,
                            name="rs_lstm")(inp)
    y = layers.Concatenate()([layers.GlobalAveragePooling1D()(seq), h, c])
    model = keras.Model(inp, layers.Dense(1)(y))
    twin, spec = stateless_twin(model)
    assert spec.names == ["rs_lstm:h", "rs_lstm:c"]
    assert [(s.layer_class, s.units, s.shape, s.dtype) for s in spec] == [
        ("LSTM", UNITS, (UNITS,), "float32")] * 2
    X = data(seed=9)
    (whole,) = run_chunked(model, X, chunk=T)
    (y,), _ = twin_call(twin, X, spec.zeros(B))
    assert_close(y, whole, "return_state")
    assert len(twin.inputs) == 3 and len(twin.outputs) == 3
    # no RNN state variables anywhere (the cell's dropout seed generator is the only
    # non-trainable variable)
    assert not [v for v in twin.variables if "rnn_state" in v.path]


def test_generic_rnn_with_lstm_cell():
    model = keras.Sequential([keras.Input(batch_shape=(B, None, F)),
                              layers.RNN(layers.LSTMCell(UNITS), stateful=True,
                                         return_sequences=True, name="generic"),
                              layers.Dense(1)])
    twin, spec = stateless_twin(model)
    assert spec.names == ["generic:h", "generic:c"]
    X = data(seed=10)
    chunks = run_chunked(model, X)
    (y,), _ = twin_call(twin, X, spec.zeros(B))
    assert_close(y, np.concatenate(chunks, axis=1), "generic_rnn")


def test_set_states_validates():
    model, _ = ZOO["lstm-1-seq-sequential"]()
    with pytest.raises(ValueError, match="expected 2 state arrays"):
        set_states(model, [np.zeros((B, UNITS))])
    with pytest.raises(ValueError, match="expected shape"):
        set_states(model, [np.zeros((B + 1, UNITS))] * 2)
    twin, _ = stateless_twin(model)
    with pytest.raises(UnsupportedModelError, match="stateless twin"):
        get_states(twin)


# ----------------------------------------------------------------------------- errors


def test_error_no_recurrent_state():
    dense = keras.Sequential([keras.Input(batch_shape=(B, None, F)), layers.Dense(1)])
    with pytest.raises(StatefulLayoutError, match="no stateful recurrent layer"):
        stateless_twin(dense)
    stateless = keras.Sequential([keras.Input(batch_shape=(B, None, F)), layers.LSTM(2)])
    with pytest.raises(StatefulLayoutError, match="no stateful recurrent layer"):
        stateless_twin(stateless)


def test_error_subclassed_model():
    class Forecaster(keras.Model):
        def __init__(self):
            super().__init__()
            self.rnn = layers.LSTM(UNITS, stateful=True)
            self.head = layers.Dense(1)

        def call(self, x):
            return self.head(self.rnn(x))

    model = Forecaster()
    model(data())
    with pytest.raises(UnsupportedModelError, match="subclassed model"):
        stateless_twin(model)
    with pytest.raises(UnsupportedModelError, match="subclassed model"):
        batch_size_twin(model, 1)
    # the same model nested in a functional graph is reported too (it must be called eagerly
    # once first: Keras cannot create its state variables symbolically)
    inner = Forecaster()
    inner(data())
    inp = keras.Input(batch_shape=(B, None, F))
    outer = keras.Model(inp, inner(inp))
    with pytest.raises(UnsupportedModelError, match="subclassed model"):
        stateless_twin(outer)


def test_error_shared_stateful_layer():
    inp = keras.Input(batch_shape=(B, None, F))
    rnn = layers.GRU(F, stateful=True, return_sequences=True, name="shared_gru")
    model = keras.Model(inp, rnn(rnn(inp)))
    with pytest.raises(UnsupportedModelError, match="shared_gru.*more than once"):
        stateless_twin(model)


def test_error_explicit_initial_state():
    inp = keras.Input(batch_shape=(B, None, F))
    h0 = keras.Input(batch_shape=(B, UNITS))
    y = layers.GRU(UNITS, stateful=True, name="dec")(inp, initial_state=h0)
    with pytest.raises(UnsupportedModelError, match="dec.*initial_state"):
        stateless_twin(keras.Model([inp, h0], y))


def test_error_rnn_hidden_in_custom_layer():
    class Block(layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.rnn = layers.LSTM(UNITS, stateful=True, return_sequences=True)

        def call(self, x):
            return self.rnn(x)

    block = Block(name="block")
    block(data())  # Keras cannot create the state variables symbolically
    inp = keras.Input(batch_shape=(B, None, F))
    model = keras.Model(inp, block(inp))
    with pytest.raises(UnsupportedModelError, match="block.*contains the stateful recurrent layer"):
        stateless_twin(model)


def test_error_stacked_cells_unknown_state_structure():
    model = keras.Sequential([
        keras.Input(batch_shape=(B, None, F)),
        layers.RNN([layers.GRUCell(2), layers.GRUCell(2)], stateful=True, name="stacked")])
    with pytest.raises(UnsupportedModelError, match="stacked.*nested state structure"):
        stateless_twin(model)


def test_error_fixed_time_layer_suggests_free_time_false():
    model = keras.Sequential([keras.Input(batch_shape=(B, 5, F)),
                              layers.LSTM(UNITS, stateful=True, return_sequences=True),
                              layers.Flatten(), layers.Dense(1)])
    with pytest.raises(UnsupportedModelError, match="free_time=False"):
        stateless_twin(model)
    twin, spec = stateless_twin(model, free_time=False)
    X = data(t=5, seed=11)
    (y,), _ = twin_call(twin, X, spec.zeros(B))
    (whole,) = run_chunked(model, X, chunk=5)
    assert_close(y, whole, "fixed_time")


def test_backend_is_the_one_requested():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


def test_twin_save_and_reload(tmp_path):
    model = make_nested()
    twin, spec = stateless_twin(model)
    path = tmp_path / "twin.keras"
    twin.save(path)
    reloaded = keras.models.load_model(path)
    X = data(seed=12)
    for a, b in zip(twin([X, *spec.zeros(B)]), reloaded([X, *spec.zeros(B)])):
        assert_close(a, b, "save_reload")


def test_padding_rows_does_not_change_real_rows():
    """Rows are independent, so a batch may be padded (e.g. to a power of two) to reuse a
    compiled shape; the padded rows are simply dropped."""
    model, _ = ZOO["lstm-2-seq-sequential"]()
    twin, spec = stateless_twin(model)
    X = data(n=5, seed=13)
    (y,), s = twin_call(twin, X[:, :1], spec.zeros(5))
    Xp = np.concatenate([X[:, :1], np.zeros((3, 1, F), "float32")])
    (yp,), sp = twin_call(twin, Xp, spec.zeros(8))
    assert_close(yp[:5], y, "padding")
    for a, b in zip(sp, s):
        assert_close(a[:5], b, "padding_state")


def test_original_still_trains_and_saves_after_twins(tmp_path):
    inp = keras.Input(batch_shape=(B, None, F))
    x = layers.LSTM(UNITS, stateful=True, return_sequences=True, use_cudnn=False)(inp)
    model = keras.Model(inp, layers.TimeDistributed(layers.Dense(1))(x))
    model.compile("sgd", "mse")
    twin, spec = stateless_twin(model)
    batch_size_twin(model, 1)
    X = data(seed=14)
    model.fit(X, X[..., :1], batch_size=B, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "orig.keras"
    model.save(path)
    again = keras.models.load_model(path)
    reset_states(model)
    reset_states(again)
    assert_close(again(X), model(X), "orig_reload")
    (y,), _ = twin_call(twin, X, spec.zeros(B))  # shared weights: the twin saw the update
    reset_states(model)
    assert_close(y, model(X), "twin_after_fit")
