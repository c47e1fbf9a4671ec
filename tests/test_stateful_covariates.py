"""arrange_stateful(static_cols=..., known_cols=...): every batch (and the epoch of arrays(), fit_kwargs() and
to_tf_dataset) equals a plain-loop reference, real stateful Keras models with two or three inputs (lanes +
static, + known values) equal the same weights on each whole series, and bad covariates are refused with
statebatch errors."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch.errors import DataValueError, ParameterError


def frame(lengths, seed=0, shuffled=True):
    """A long frame: per series a feature ``v``, a known ``price`` and ``promo``, static ``shop`` (text) and
    ``size`` (numeric); rows in a random order (the arrangement sorts them by id and time)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, n in enumerate(lengths):
        parts.append(pd.DataFrame({
            "id": f"s{i:02d}", "t": np.arange(n), "v": rng.normal(size=n).round(3) + 10 * i,
            "price": rng.normal(size=n).round(3) + 100 * i, "promo": rng.integers(0, 2, size=n).astype(float),
            "shop": "xyz"[i % 3], "size": float(i % 4 + 1)}))
    df = pd.concat(parts, ignore_index=True)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True) if shuffled else df


def reference(df, a, plan, k, horizon, return_sequences=True):
    """Batch ``k`` of ``plan`` by hand: a loop over lanes and steps reading the frame itself (many-to-one: the
    target of each chunk's last real step, weight 1 only for a full chunk)."""
    B, T = plan.batch_size, plan.batch_length(k)
    shops = sorted(df["shop"].unique())
    out = {"past": np.zeros((B, T, 1)), "future": np.zeros((B, T, 2)), "static": np.zeros((B, 2)),
           "y": np.zeros((B, T, 1)), "sample_weight": np.zeros((B, T))}
    if not return_sequences:
        out["y"], out["sample_weight"] = np.zeros((B, 1)), np.zeros(B)
    for i in range(B):
        s = int(plan.series[k, i])
        if s < 0:
            continue
        rows = df[df["id"] == a.series_ids[s]].sort_values("t")
        out["static"][i] = [shops.index(rows["shop"].iloc[0]), rows["size"].iloc[0]]
        for t in range(int(plan.valid[k, i])):
            step = int(plan.step[k, i]) + t
            out["past"][i, t, 0] = rows["v"].iloc[step]
            out["future"][i, t] = rows[["price", "promo"]].iloc[step + horizon].to_numpy()
            if return_sequences:
                out["y"][i, t, 0] = rows["v"].iloc[step + horizon]
                out["sample_weight"][i, t] = 1.0
            else:
                out["y"][i, 0] = rows["v"].iloc[step + horizon]  # the last real step's target wins
        if not return_sequences:
            out["sample_weight"][i] = float(plan.valid[k, i] == T)
    return out


def assert_batch(got, want):
    assert list(got) == ["past", "future", "static", "y", "sample_weight"]
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


@pytest.mark.filterwarnings("ignore:padding is")
@settings(max_examples=16, deadline=None)
@given(lengths=st.lists(st.integers(3, 17), min_size=1, max_size=6), T=st.integers(1, 4), B=st.integers(1, 3),
       shuffle=st.booleans(), jitter=st.integers(0, 1), horizon=st.integers(1, 2), seed=st.integers(0, 50),
       seq=st.booleans())
def test_every_batch_equals_the_plain_loop(lengths, T, B, shuffle, jitter, horizon, seed, seq):
    lengths = [n + horizon for n in lengths]
    jitter = min(jitter, T - 1)
    df = frame(lengths, seed)
    a = sb.arrange_stateful(df, T, B, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                            static_cols=["shop", "size"], known_cols=["price", "promo"], horizon=horizon,
                            shuffle=shuffle, seed=seed, jitter=jitter, return_sequences=seq)
    for epoch in (0, 1, 2):
        plan = a.plan(epoch)
        for k in range(plan.n_batches):
            assert_batch(a.batch(k, epoch), reference(df, a, plan, k, horizon, seq))
    if not jitter:  # the Keras feeds' epoch cache: batches become views of one materialised epoch
        a.set_epoch(1)
        assert a._cache_epoch(1 << 30)
        plan = a.plan()
        for k in range(plan.n_batches):
            assert_batch(a.batch(k), reference(df, a, plan, k, horizon, seq))


def test_split_parts_and_lane_blocks_carry_the_covariates():
    df = frame([20, 9, 14, 6])
    a = sb.arrange_stateful(df, 3, 2, id_col="id", time_col="t", target_cols=["v"], static_cols=["shop", "size"],
                            known_cols=["price", "promo"], shuffle=True, seed=3)
    train, val = a.split(0.3)
    for part in (train, val):
        for epoch in (0, 1):
            plan = part.plan(epoch)
            for k in range(plan.n_batches):
                got, want = part.batch(k, epoch), reference(df, part, plan, k, 1)
                for key in ("past", "future", "static", "y"):  # val's weights: 0 before the held-out part
                    np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)
    got = a.batch(1, lanes=slice(1, 2))
    whole = a.batch(1)
    for key in whole:
        np.testing.assert_array_equal(got[key], whole[key][1:2])


def test_plain_batches_without_covariates_and_codes_kept():
    df = frame([8, 5])
    plain = sb.arrange_stateful(df, 2, 2, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"])
    assert isinstance(plain.batch(0), tuple) and plain.covariates is None
    a = sb.arrange_stateful(df, 2, 2, id_col="id", time_col="t", target_cols=["v"], static_cols=["id", "shop"])
    assert a.covariates.static_vocab == {"id": ["s00", "s01"], "shop": ["x", "y"]}
    assert list(a.batch(0)) == ["past", "static", "y", "sample_weight"]  # no known_cols: no "future"
    # the observed features default to every column that is no id, time or covariate column
    first = df[df["id"] == a.series_ids[int(a.plan().series[0, 0])]].sort_values("t")
    np.testing.assert_array_equal(a.batch(0)["past"][0], first[["v", "price", "promo", "size"]].to_numpy()[:2])
    targetless = sb.arrange_stateful(df, 2, 2, id_col="id", time_col="t", targets=None, static_cols=["shop"])
    assert list(targetless.batch(0)) == ["past", "static"]


def test_bad_covariates_are_refused():
    df = frame([8, 5])
    kw = dict(id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"])
    varying = df.copy()
    varying.loc[varying.index[0], "size"] = 99.0
    with pytest.raises(DataValueError, match="static column 'size' varies within series"):
        sb.arrange_stateful(varying, 2, 2, static_cols=["size"], **kw)
    with pytest.raises(ParameterError, match="names the time column"):
        sb.arrange_stateful(df, 2, 2, known_cols=["t"], **kw)
    with pytest.raises(ParameterError, match="names the time column"):
        sb.arrange_stateful(df, 2, 2, static_cols=["t"], **kw)
    with pytest.raises(ParameterError, match="not columns of the data"):
        sb.arrange_stateful(df, 2, 2, known_cols=["nope"], **kw)
    with pytest.raises(ParameterError, match="both known_cols and static_cols"):
        sb.arrange_stateful(df, 2, 2, known_cols=["price"], static_cols=["price"], **kw)
    with pytest.raises(ParameterError, match="need next-value targets"):
        sb.arrange_stateful(df, 2, 2, id_col="id", time_col="t", feature_cols=["v"], targets=None, known_cols=["price"])
    holes = df.copy()
    holes.loc[holes.index[3], "price"] = np.nan
    with pytest.raises(DataValueError, match="known column 'price' is NaN"):
        sb.arrange_stateful(holes, 2, 2, known_cols=["price"], **kw)
    with pytest.raises(ParameterError, match="name DataFrame columns"):
        sb.arrange_stateful(np.zeros((10, 2)), 2, 2, static_cols=["a"])


def two_input_model(stateful, B, T, n_static, seed=0):
    """``past`` through a (stateful) LSTM, plus a projection of ``static`` repeated over the steps."""
    import keras

    keras.utils.set_random_seed(seed)
    if stateful:
        past = keras.Input(batch_shape=(B, T, 1), name="past")
        static = keras.Input(batch_shape=(B, n_static), name="static")
    else:
        past, static = keras.Input((T, 1), name="past"), keras.Input((n_static,), name="static")
    h = keras.layers.LSTM(4, return_sequences=True, stateful=stateful)(past)
    s = keras.layers.RepeatVector(T)(keras.layers.Dense(4)(static))
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([h, s]))
    return keras.Model([past, static], out)


@pytest.mark.backend
def test_keras_two_inputs_batch_by_batch_equal_each_whole_series():
    """fit_stateful feeds the mapping by the model's input names (the extra ``future`` key is left out, not
    put into another input); predicted batch by batch, lanes + static equal the same weights on each whole
    series with its static vector."""
    from statebatch.keras import StatefulDataset, fit_stateful, predict

    lengths = [23, 9, 31, 14, 18]
    df = frame(lengths, seed=4)
    B, T = 2, 5
    a = sb.arrange_stateful(df, T, B, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                            static_cols=["shop", "size"], known_cols=["price", "promo"], shuffle=True, seed=1)
    assert a.resets[1:].any()
    model = two_input_model(True, B, T, 2)
    model.compile(optimizer="sgd", loss="mse")
    history = fit_stateful(model, StatefulDataset(a, model=model), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    per_series = predict(model, a)
    shops = sorted(df["shop"].unique())
    for s, out in enumerate(per_series):
        rows = df[df["id"] == a.series_ids[s]].sort_values("t")
        n = len(rows) - 1  # steps with a next-value target
        twin = two_input_model(False, None, n, 2)
        twin.set_weights(model.get_weights())
        static = np.array([[shops.index(rows["shop"].iloc[0]), rows["size"].iloc[0]]], dtype="float32")
        whole = twin.predict([rows[["v"]].to_numpy("float32")[None, :n], static], verbose=0)[0]
        assert out.shape == whole.shape
        np.testing.assert_allclose(out, whole, atol=1e-5)


@pytest.mark.backend
def test_keras_feeds_check_the_model_inputs():
    from statebatch.keras import StatefulDataset

    df = frame([12, 7])
    kw = dict(id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"])
    a = sb.arrange_stateful(df, 3, 2, static_cols=["size"], **kw)
    model = two_input_model(True, 2, 3, 1)
    x, y, w = StatefulDataset(a, model=model, resets_by="manual")[0]
    assert isinstance(x, tuple) and len(x) == 2  # in the model's input order: past, static
    np.testing.assert_array_equal(x[0], a.batch(0)["past"])
    np.testing.assert_array_equal(x[1], a.batch(0)["static"])
    np.testing.assert_array_equal(w, a.batch(0)["sample_weight"])
    with pytest.raises(ParameterError, match=r"model's inputs \['static'\] are not keys"):
        StatefulDataset(sb.arrange_stateful(df, 3, 2, known_cols=["price"], **kw), model=model)
    with pytest.raises(ParameterError, match="model= matches covariate inputs"):
        StatefulDataset(sb.arrange_stateful(df, 3, 2, **kw), model=model)


class _Named:  # a stand-in for a Keras model: only its named inputs are read
    def __init__(self, *names):
        self.input = [type("T", (), {"name": n})() for n in names]


def _shuffled_lanes():
    """Five series in two shuffled lanes with static and known covariates: the frame, the options, the lanes."""
    df = frame([20, 9, 14, 6, 11])
    kw = dict(id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"], static_cols=["shop", "size"],
              known_cols=["price", "promo"], shuffle=True, seed=3)
    return df, kw, sb.arrange_stateful(df, 3, 2, **kw)


@pytest.mark.filterwarnings("ignore:padding is")
def test_arrays_and_fit_kwargs_hand_out_the_epoch_mapping():
    df, kw, a = _shuffled_lanes()
    a.set_epoch(1)  # a shuffled epoch other than the first
    epoch, plan = a.arrays(), a.plan()
    assert list(epoch) == ["past", "future", "static", "y", "sample_weight"]
    for k in range(plan.n_batches):  # batch k's rows of the epoch arrays are batch k, as the plain loop builds it
        rows = slice(2 * k, 2 * k + 2)
        assert_batch({key: v[rows] for key, v in epoch.items()}, reference(df, a, plan, k, 1))
    np.testing.assert_array_equal(a.X, epoch["past"])  # X stays the lanes' own input
    fit = a.fit_kwargs()
    assert sorted(fit) == ["batch_size", "sample_weight", "shuffle", "x", "y"] and fit["shuffle"] is False
    assert list(fit["x"]) == ["past", "future", "static"] and fit["batch_size"] == 2
    for key in ("past", "future", "static"):
        np.testing.assert_array_equal(fit["x"][key], epoch[key])
    np.testing.assert_array_equal(fit["sample_weight"], epoch["sample_weight"])
    x = a.fit_kwargs(model=_Named("static", "past"))["x"]  # a list-input model: its inputs, in its order
    assert isinstance(x, list) and len(x) == 2
    np.testing.assert_array_equal(x[0], epoch["static"])
    with pytest.raises(ParameterError, match=r"model's inputs \['mask'\] are not keys"):
        a.fit_kwargs(model=_Named("past", "mask"))
    plain = sb.arrange_stateful(df, 3, 2, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"])
    assert isinstance(plain.arrays(), tuple)
    with pytest.raises(ParameterError, match="these lanes have one input"):
        plain.fit_kwargs(model=_Named("past"))
    targetless = sb.arrange_stateful(df, 3, 2, id_col="id", time_col="t", targets=None, static_cols=["shop"])
    assert list(targetless.arrays()) == ["past", "static"] and list(targetless.fit_kwargs()) == ["x", "batch_size",
                                                                                                "shuffle"]


@pytest.mark.filterwarnings("ignore:padding is")
def test_to_tf_dataset_serves_lanes_with_covariates_as_dicts_of_tensors():
    import tensorflow as tf

    from statebatch.keras import StatefulDataset, to_tf_dataset

    df, kw, a = _shuffled_lanes()
    ds = to_tf_dataset(a)
    x_spec, y_spec, w_spec = ds.element_spec
    assert isinstance(x_spec, dict) and list(x_spec) == ["past", "future", "static"]
    assert [tuple(x_spec[k].shape) for k in x_spec] == [(2, 3, 1), (2, 3, 2), (2, 2)]
    assert (tuple(y_spec.shape), tuple(w_spec.shape)) == ((2, 3, 1), (2, 3))
    for epoch in (0, 1):  # every pass is the next (repacked) epoch
        plan = a.plan(epoch)
        got = list(ds)
        assert len(got) == plan.n_batches
        for k, (x, y, w) in enumerate(got):
            want = reference(df, a, plan, k, 1)
            assert_batch({**{key: v.numpy() for key, v in x.items()}, "y": y.numpy(), "sample_weight": w.numpy()},
                         want)
    listed = to_tf_dataset(sb.arrange_stateful(df, 3, 2, **kw), model=_Named("static", "past"))
    assert isinstance(listed.element_spec[0], tuple) and [tuple(s.shape) for s in listed.element_spec[0]] == [
        (2, 2), (2, 3, 1)]
    jittered = to_tf_dataset(sb.arrange_stateful(df, 3, 2, jitter=1, **kw))
    assert [tuple(s.shape) for s in jittered.element_spec[0].values()] == [(2, None, 1), (2, None, 2), (2, 2)]
    assert isinstance(next(iter(jittered))[0]["past"], tf.Tensor)
    with pytest.raises(ParameterError, match="pass model= to the dataset"):
        to_tf_dataset(StatefulDataset(a, resets_by="manual"), model=_Named("past"))
    with pytest.raises(ParameterError, match="these batches have one input"):
        to_tf_dataset(sb.arrange_stateful(df, 3, 2, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"]),
                      model=_Named("p"))


def three_input_model(stateful, B, T, seed=0):
    """``past`` and ``future`` (the known values of each step's target step) through a (stateful) LSTM, plus a
    projection of ``static`` repeated over the steps; inputs as a dict, the form to_tf_dataset serves."""
    import keras

    keras.utils.set_random_seed(seed)
    shape = (lambda f: dict(batch_shape=(B, T, f))) if stateful else (lambda f: dict(shape=(T, f)))
    past, future = keras.Input(name="past", **shape(1)), keras.Input(name="future", **shape(2))
    static = keras.Input(batch_shape=(B, 2), name="static") if stateful else keras.Input((2,), name="static")
    h = keras.layers.LSTM(4, return_sequences=True, stateful=stateful)(keras.layers.Concatenate()([past, future]))
    s = keras.layers.RepeatVector(T)(keras.layers.Dense(4)(static))
    out = keras.layers.Dense(1)(keras.layers.Concatenate()([h, s]))
    return keras.Model({"past": past, "future": future, "static": static}, out)


@pytest.mark.filterwarnings("ignore:padding is")
def test_keras_fits_to_tf_dataset_of_covariate_lanes_and_they_equal_each_whole_series():
    """A stateful three-input model trains on to_tf_dataset's dicts (and on fit_kwargs); run batch by batch over
    the next pass, lanes reset where a series starts, it equals the same weights on each whole series with its
    known values and static vector (the TensorFlow backend: to_tf_dataset needs TensorFlow)."""
    from statebatch.keras import LaneResetCallback, reset_rows, to_tf_dataset

    lengths = [23, 9, 31, 14, 18]
    df = frame(lengths, seed=4)
    B, T = 2, 5
    kw = dict(id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"], static_cols=["shop", "size"],
              known_cols=["price", "promo"], shuffle=True, seed=1)
    a, twin = sb.arrange_stateful(df, T, B, **kw), sb.arrange_stateful(df, T, B, **kw)
    model = three_input_model(True, B, T)
    model.compile(optimizer="sgd", loss="mse")
    ds = to_tf_dataset(a)
    history = model.fit(ds, epochs=2, shuffle=False, callbacks=[LaneResetCallback(a)], verbose=0)
    assert np.isfinite(history.history["loss"]).all() and a.epoch == 2
    history = model.fit(**twin.fit_kwargs(), epochs=1, callbacks=[LaneResetCallback(twin)], verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    plan, outs = a.plan(2), []
    for k, (x, _, _) in enumerate(ds):  # epoch 2, in order
        reset_rows(model, None if k == 0 else plan.resets[k])
        outs.append(np.asarray(model.predict_on_batch(x)))
    assert len(outs) == plan.n_batches and plan.resets[1:].any()
    per_series = twin.unbatch(outs, epoch=2)
    shops = sorted(df["shop"].unique())
    for s, out in enumerate(per_series):
        rows = df[df["id"] == a.series_ids[s]].sort_values("t")
        n = len(rows) - 1  # steps with a next-value target
        whole = three_input_model(False, None, n)
        whole.set_weights(model.get_weights())
        inputs = {"past": rows[["v"]].to_numpy("float32")[None, :n],
                  "future": rows[["price", "promo"]].to_numpy("float32")[None, 1:],  # each step's target step
                  "static": np.array([[shops.index(rows["shop"].iloc[0]), rows["size"].iloc[0]]], dtype="float32")}
        np.testing.assert_allclose(out, whole.predict(inputs, verbose=0)[0], atol=1e-5)


def test_fit_stateful_feeds_covariate_lanes_with_a_static_batch_size_on_tensorflow():
    """One lane: Keras' PyDataset adapter gives TensorFlow an unknown batch size, which a stateful LSTM with
    batch size 1 rejects; fit_stateful feeds lanes with covariates through to_tf_dataset, as plain lanes."""
    from statebatch.keras import fit_stateful

    df = frame([12, 7, 9], seed=2)
    a = sb.arrange_stateful(df, 4, 1, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                            static_cols=["shop", "size"], known_cols=["price", "promo"])
    model = three_input_model(True, 1, 4)
    model.compile(optimizer="sgd", loss="mse")
    history = fit_stateful(model, a, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all() and len(history.history["loss"]) == 2


def test_to_tf_dataset_of_forecasting_windows_serves_what_window_dataset_serves():
    from statebatch.keras import WindowDataset, to_tf_dataset

    w = sb.make_windows(frame([20, 9]), 4, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                        static_cols=["size"], known_cols=["price"], batch_size=8)
    items = [WindowDataset(w)[k] for k in range(w.n_batches)]
    for (x, y), (wx, wy) in zip(to_tf_dataset(w), items):
        assert list(x) == list(wx)
        for key in wx:
            np.testing.assert_array_equal(x[key].numpy(), wx[key])
        np.testing.assert_array_equal(y.numpy(), wy)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_torch_lane_loader_serves_the_covariates(prefetch):
    import torch  # noqa: F401  (the torch adapter needs it; installed in the main environment)

    from statebatch.torch import LaneCovariateBatch, LaneLoader

    df = frame([20, 9, 14, 6])
    a = sb.arrange_stateful(df, 3, 2, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                            static_cols=["shop", "size"], known_cols=["price", "promo"], shuffle=True, seed=5)
    twin = sb.arrange_stateful(df, 3, 2, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                               static_cols=["shop", "size"], known_cols=["price", "promo"], shuffle=True, seed=5)
    loader = LaneLoader(a, prefetch=prefetch)
    for epoch in (0, 1):
        batches = list(loader)
        assert len(batches) == twin.plan(epoch).n_batches
        for k, b in enumerate(batches):
            assert isinstance(b, LaneCovariateBatch)
            want = twin.batch(k, epoch)
            for field, key in (("x", "past"), ("y", "y"), ("weight", "sample_weight"), ("static", "static"),
                               ("future", "future")):
                np.testing.assert_array_equal(getattr(b, field).numpy(), want[key], err_msg=key)
            np.testing.assert_array_equal(b.reset.numpy(), twin.plan(epoch).resets[k] | (k == 0))


@pytest.mark.filterwarnings("ignore:padding is")
@pytest.mark.parametrize("num_replicas", [1, 2])
def test_neutral_lane_feed_serves_the_covariates_by_key(num_replicas):
    from statebatch.results.feed import lane_block, lane_steps, plan_resets

    df = frame([20, 9, 14, 6, 11])
    a = sb.arrange_stateful(df, 3, 4, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                            static_cols=["shop", "size"], known_cols=["price", "promo"], shuffle=True, seed=2)
    for epoch in (0, 1):
        plan, resets = a.plan(epoch), dict(plan_resets(a, epoch))
        for rank in range(num_replicas):
            block = lane_block(4, num_replicas, rank)
            steps = list(lane_steps(a, epoch, num_replicas=num_replicas, rank=rank))
            assert [s.batch for s in steps] == list(range(plan.n_batches))
            for s in steps:  # this replica's lanes of the batch the plain loop builds
                want = reference(df, a, plan, s.batch, 1)
                assert list(s.x) == ["past", "future", "static"]
                for key in s.x:
                    np.testing.assert_allclose(s.x[key], want[key][block], rtol=1e-6, err_msg=key)
                np.testing.assert_allclose(s.y, want["y"][block], rtol=1e-6)
                np.testing.assert_array_equal(s.weight, want["sample_weight"][block])
                np.testing.assert_array_equal(s.reset, resets[s.batch][block])
    targetless = sb.arrange_stateful(df, 3, 2, id_col="id", time_col="t", targets=None, static_cols=["shop"])
    step = next(lane_steps(targetless))
    assert list(step.x) == ["past", "static"] and step.y is None and step.weight.shape == (2, 3)


def test_a_text_known_column_is_a_dtype_error_pointing_at_static_cols():
    # the same mistake and the same error class as make_windows: a per-series category passed as known
    from statebatch.errors import DTypeError

    df = frame([8, 5])
    with pytest.raises(DTypeError, match=r"(?s)known_cols \['shop'\].*static_cols"):
        sb.arrange_stateful(df, 2, 2, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                            known_cols=["price", "shop"])


def test_static_vocab_keeps_the_training_codes_in_lanes_of_fewer_series():
    # shops x, y, z; a frame without shop 'x' coded y as 0 (training's 'x') without the vocabulary
    df = frame([6, 5, 7, 4])  # shops: x, y, z, x
    kw = dict(id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"], static_cols=["shop", "id"])
    train = sb.arrange_stateful(df, 2, 2, **kw)
    sub = df[df.shop != "x"]
    assert sb.arrange_stateful(sub, 2, 2, **kw).covariates.static_vocab["shop"] == ["y", "z"]
    vocab = train.covariates.static_vocab
    for fitted in (train, vocab, sb.make_windows(df, 2, **kw)):
        held = sb.arrange_stateful(sub, 2, 2, static_vocab=fitted, **kw)
        assert held.covariates.static_vocab == vocab
        plan = held.plan()
        for k in range(held.n_batches):
            st = held.batch(k)["static"]
            for i in range(plan.batch_size):
                s = int(plan.series[k, i])
                if s < 0:
                    continue
                sid = held.series_ids[s] if hasattr(held, "series_ids") else None
                shop, ident = vocab["shop"][int(st[i, 0])], vocab["id"][int(st[i, 1])]
                assert ident in set(sub.id) and shop == sub[sub.id == ident].shop.iloc[0]
                if sid is not None:
                    assert ident == sid
    with pytest.raises(DataValueError, match=r"(?s)static column 'shop'.*\['w'\].*not in static_vocab"):
        sb.arrange_stateful(df.assign(shop=df.shop.replace("z", "w")), 2, 2, static_vocab=train, **kw)
    with pytest.raises(ParameterError, match="static_vocab"):
        sb.arrange_stateful(df, 2, 2, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                            static_vocab=train)
