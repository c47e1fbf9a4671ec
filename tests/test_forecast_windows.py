"""Forecasting windows (issue 24): known/static covariates, variable history, scale, missing masks,
lags and calendar features, against a slow reference written with plain Python loops here."""

import math
import statistics
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch.errors import (
    DataValueError,
    DTypeError,
    ParameterError,
    ShapeError,
    StatebatchError,
)
from statebatch.materialise.forecast import split_xy

EPS = float(np.finfo(np.float16).eps)
TIME_FEATURES = ["minute", "hour", "dayofweek", "dayofmonth", "dayofyear", "month", "weekofyear"]


# --------------------------------------------------------------------------- the reference
def _center_scale(vals, method):
    """Center and scale of a list of floats (NaN already removed), written out by hand."""
    if not vals:
        return 0.0, 1.0
    if method == "standard":
        c = sum(vals) / len(vals)
        sd = statistics.stdev(vals) if len(vals) >= 2 else 0.0
        return c, sd + EPS
    def q(p):
        return float(np.percentile(vals, p))

    return q(50), (q(75) - q(25)) / 2.0 + EPS


def _time_feature(ts, name):
    ts = pd.Timestamp(ts)
    value, lo, hi = {
        "minute": (ts.minute, 0, 59), "hour": (ts.hour, 0, 23), "dayofweek": (ts.weekday(), 0, 6),
        "dayofmonth": (ts.day, 1, 31), "dayofyear": (ts.timetuple().tm_yday, 1, 366),
        "month": (ts.month, 1, 12), "weekofyear": (ts.isocalendar()[1], 1, 53),
    }[name]
    return (value - lo) / (hi - lo) - 0.5


def reference(df, *, id_col, time_col, target_cols, known, static, timesteps, min_timesteps=None, stride=1,
              horizon=1, n_ahead=1, start_index=0, end_index=None, scale=None, method="standard", lags=(),
              missing="error", fill=0.0, time_features=(), feats=("y", "x")):
    """Every window of every series, one at a time, from the frame itself."""
    feats = list(feats)
    out = {k: [] for k in ("past", "future", "static", "y", "mask", "scale", "past_observed", "y_observed")}
    vocab = {c: sorted(df[c].unique()) for c in static if not pd.api.types.is_numeric_dtype(df[c])}
    max_lag = max(lags) if lags else 0
    for sid in pd.unique(df[id_col]):
        g = df[df[id_col] == sid].sort_values(time_col)
        rows = [dict(r) for _, r in g.iterrows()]
        L = len(rows)
        end = L if end_index is None else min(L, end_index)
        first = start_index + max_lag
        tgt = [[float(r[c]) for c in target_cols] for r in rows]
        stat = [float(vocab[c].index(rows[0][c])) if c in vocab else float(rows[0][c]) for c in static]
        need = timesteps if min_timesteps is None else min_timesteps
        k = -(timesteps // stride) - 2
        windows = []  # (first, last) input step of every window of this series
        while True:
            s = first + k * stride
            e = s + timesteps - 1
            k += 1
            if e + horizon + n_ahead - 1 >= end:
                break
            if e - max(s, first) + 1 < need:
                continue
            if s < first and min_timesteps is None:
                continue
            windows.append((s, e))
        if scale == "series":  # the series' input steps: first usable step .. last input of its last window
            last_input = max((e for _, e in windows), default=first - 1)
            s_series = []
            for j in range(len(target_cols)):
                vals = [tgt[r][j] for r in range(first, last_input + 1) if not math.isnan(tgt[r][j])]
                s_series.append(_center_scale(vals, method))
        for s, e in windows:
            # scale of this window
            if scale == "series":
                cs = s_series
            elif scale == "window":
                cs = []
                for j in range(len(target_cols)):
                    vals = [tgt[r][j] for r in range(max(s, first), e + 1) if not math.isnan(tgt[r][j])]
                    cs.append(_center_scale(vals, method))
            else:
                cs = [(0.0, 1.0)] * len(target_cols)
            past, mask, pobs = [], [], []
            for r in range(s, e + 1):
                if r < first:
                    width = len(feats) + len(known) + len(lags) * len(target_cols) + len(time_features)
                    past.append([0.0] * width)
                    pobs.append([False] * width)
                    mask.append(False)
                    continue
                vec, obs = [], []
                for c in feats:
                    v = float(rows[r][c])
                    if c in target_cols:
                        j = target_cols.index(c)
                        v = (v - cs[j][0]) / cs[j][1]
                    vec.append(v)
                for c in known:
                    vec.append(float(rows[r][c]))
                for lag in lags:
                    for j in range(len(target_cols)):
                        vec.append((tgt[r - lag][j] - cs[j][0]) / cs[j][1])
                for name in time_features:
                    vec.append(_time_feature(rows[r][time_col], name))
                obs = [not math.isnan(v) for v in vec]
                past.append([fill if math.isnan(v) else v for v in vec])
                pobs.append(obs)
                mask.append(True)
            fut, ys, yobs = [], [], []
            for j in range(n_ahead):
                r = e + horizon + j
                fut.append([float(rows[r][c]) for c in known] + [_time_feature(rows[r][time_col], n)
                                                                 for n in time_features])
                yv = [(tgt[r][i] - cs[i][0]) / cs[i][1] for i in range(len(target_cols))]
                ys.append([fill if math.isnan(v) else v for v in yv])
                yobs.append([not math.isnan(v) for v in yv])
            out["past"].append(past)
            out["future"].append(fut)
            out["static"].append(stat)
            out["y"].append(ys)
            out["mask"].append(mask)
            out["scale"].append([[c for c, _ in cs], [sc for _, sc in cs]])
            out["past_observed"].append(pobs)
            out["y_observed"].append(yobs)
    return out


# --------------------------------------------------------------------------- data
def long_frame(lengths, n_known, seed, nan_fraction=0.0, start="2024-01-01", freq="D", static=False):
    """A long frame (rows shuffled): id, t, y (target), x (observed), k0.. (known), and with ``static``
    store/size (one value per series)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, n in enumerate(lengths):
        part = pd.DataFrame({"id": f"s{i}", "t": pd.date_range(start, periods=n, freq=freq),
                             "y": rng.normal(10 * i, 1 + i, n).round(3), "x": rng.normal(size=n).round(3)})
        for j in range(n_known):
            part[f"k{j}"] = rng.normal(size=n).round(3)
        if static:
            part["store"] = ["north", "south", "east"][i % 3]
            part["size"] = float(i + 1)
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    if nan_fraction:
        for c in ("y", "x"):
            df.loc[rng.random(len(df)) < nan_fraction, c] = np.nan
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _compare(w, ref, keys):
    got = w.arrays()
    assert set(got) == set(keys), (set(got), keys)
    n = len(ref["y"])
    assert w.n_windows == n
    for k in keys:
        exp = np.asarray(ref[k], dtype=got[k].dtype)
        assert got[k].shape[0] == n, k
        exp = exp.reshape(got[k].shape)
        if got[k].dtype == bool:
            np.testing.assert_array_equal(got[k], exp, err_msg=k)
        else:
            np.testing.assert_allclose(got[k], exp, rtol=1e-7, atol=1e-9, err_msg=k)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lengths=st.lists(st.integers(1, 14), min_size=1, max_size=4), timesteps=st.integers(1, 5),
       min_frac=st.one_of(st.none(), st.integers(1, 5)), stride=st.integers(1, 3), horizon=st.integers(1, 2),
       n_ahead=st.integers(1, 3), start_index=st.integers(0, 2), end_index=st.one_of(st.none(), st.integers(3, 14)),
       n_known=st.integers(0, 2), targets=st.sampled_from([["y"], ["y", "x"]]),
       scale=st.sampled_from([None, "series", "window"]), method=st.sampled_from(["standard", "robust"]),
       lags=st.sampled_from([(), (1,), (2, 1)]), missing=st.sampled_from(["error", "mask"]),
       static=st.sampled_from([[], ["store"], ["size", "store"]]), shuffle=st.booleans(), seed=st.integers(0, 10_000))
def test_windows_equal_the_reference(lengths, timesteps, min_frac, stride, horizon, n_ahead, start_index, end_index,
                                     n_known, targets, scale, method, lags, missing, static, shuffle, seed):
    min_timesteps = None if min_frac is None else min(min_frac, timesteps)
    df = long_frame(lengths, n_known, seed, nan_fraction=0.15 if missing == "mask" else 0.0, static=True)
    known = [f"k{j}" for j in range(n_known)]
    kw = dict(id_col="id", time_col="t", target_cols=targets, known=known, static=static, timesteps=timesteps,
              min_timesteps=min_timesteps, stride=stride, horizon=horizon, n_ahead=n_ahead, start_index=start_index,
              end_index=end_index, scale=scale, method=method, lags=list(lags), missing=missing, fill=-1.5)
    args = dict(id_col="id", time_col="t", target_cols=targets, feature_cols=["y", "x"], known_cols=known or None,
                static_cols=static or None, min_timesteps=min_timesteps, stride=stride, horizon=horizon,
                n_ahead=n_ahead, start_index=start_index, end_index=end_index, scale=scale,
                scale_method=method if scale else "standard", lags=list(lags) or None, missing=missing,
                fill_value=-1.5 if missing == "mask" else 0.0, batch_size=3, shuffle=shuffle, seed=seed)
    if not any(v for k, v in args.items() if k in ("known_cols", "static_cols", "min_timesteps", "scale", "lags")) \
            and missing == "error":
        args["static_cols"] = ["size"]  # at least one forecasting input, so that the batches are mappings
        kw["static"] = ["size"]
    ref = reference(df, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sb.StatebatchWarning)
        if end_index is not None and end_index <= start_index + (max(lags) if lags else 0):
            with pytest.raises(ParameterError, match="largest lag"):
                sb.make_windows(df, timesteps, **args)
            return
        if not ref["y"]:
            with pytest.raises(DataValueError, match="no window fits"):
                sb.make_windows(df, timesteps, **args)
            return
        w = sb.make_windows(df, timesteps, **args)
    keys = ["past", "future", "static", "y"] + (["mask"] if min_timesteps is not None else []) + \
        (["scale"] if scale else []) + (["past_observed", "y_observed"] if missing == "mask" else [])
    _compare(w, ref, keys)
    # batches: the same windows in the plan's order (shuffled or not), one mapping per batch
    plan = w.plan()
    order = np.concatenate([np.arange(w.n_windows)[plan.batch_indices(k)] for k in range(w.n_batches)])
    whole = w.arrays()
    batches = [w.batch(k) for k in range(w.n_batches)]
    for k, b in enumerate(batches):
        idx = order[k * 3: (k + 1) * 3]
        for key in keys:
            np.testing.assert_array_equal(b[key], whole[key][idx], err_msg=key)
    # the way back: per-batch outputs (here: the batches' own targets) in natural window order
    np.testing.assert_array_equal(w.unbatch([b["y"] for b in batches]), whole["y"])
    # provenance: a padded window's first step lies before its series' first usable step
    if min_timesteps is not None:
        assert (w.start[~whole["mask"][:, 0]] < start_index + (max(lags) if lags else 0)).all()


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(3, 12), min_size=1, max_size=3), shuffle_seed=st.integers(0, 100),
       features=st.lists(st.sampled_from(TIME_FEATURES), min_size=1, max_size=3, unique=True),
       freq=st.sampled_from(["h", "D", "7D", "17min"]))
def test_time_features_equal_the_reference(lengths, shuffle_seed, features, freq):
    df = long_frame(lengths, 1, shuffle_seed, start="2023-12-30 22:00", freq=freq)
    ref = reference(df, id_col="id", time_col="t", target_cols=["y"], known=["k0"], static=[], timesteps=2,
                    n_ahead=1, time_features=features)
    w = sb.make_windows(df, 2, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], time_features=features)
    _compare(w, ref, ["past", "future", "static", "y"])
    assert w.forecast.past_names == ["y", "x", "k0"] + features
    assert w.forecast.future_names == ["k0"] + features


def test_shuffled_epochs_visit_every_window_once():
    df = long_frame([9, 4, 7], 1, 3)
    w = sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], min_timesteps=2,
                        batch_size=4, shuffle=True, seed=1)
    whole = w.arrays()
    for epoch in (0, 1):
        seen = np.concatenate([b["y"][:, 0, 0] for b in w.batches(epoch)])
        np.testing.assert_array_equal(np.sort(seen), np.sort(whole["y"][:, 0, 0]))
    assert not np.array_equal(*[np.concatenate([b["y"][:, 0, 0] for b in w.batches(e)]) for e in (0, 1)])


def test_static_categories_and_vocabulary():
    df = long_frame([5, 5, 5, 5], 0, 0, static=True)
    df["kind"] = pd.Categorical(df["id"].map({"s0": "b", "s1": "a", "s2": "b", "s3": "c"}), categories=["c", "b", "a"])
    w = sb.make_windows(df, 2, id_col="id", time_col="t", target_cols=["y"], static_cols=["store", "kind"])
    assert w.forecast.static_vocab == {"store": ["east", "north", "south"], "kind": ["c", "b", "a"]}
    assert w.forecast.past_names == ["y", "x", "size"]  # static (and id/time) columns are not features
    static = w.arrays()["static"]
    assert static.dtype == np.int64  # every static column categorical: integer codes
    ids = list(w.series_ids)
    per = {ids[s]: tuple(static[i]) for i, s in enumerate(w.series)}
    assert per == {"s0": (1, 1), "s1": (2, 2), "s2": (0, 1), "s3": (1, 0)}


def test_arrays_are_read_only_and_never_the_users_data():
    df = long_frame([8, 8], 1, 0)
    before = df.copy()
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], scale="window")
    a = w.arrays()
    for v in a.values():
        assert not v.flags.writeable
    b = w.batch(0)
    b["past"][:] = 1e9  # batches are new arrays: writing into one changes nothing else
    pd.testing.assert_frame_equal(df, before)
    assert not np.shares_memory(w.batch(0)["past"], b["past"])
    np.testing.assert_array_equal(w.batch(0)["past"], a["past"][:32])


def test_numpy_arrays_without_frame():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    w = sb.make_windows(x, 4, targets="next", target_features=[1], min_timesteps=2, n_ahead=2, scale="series")
    a = w.arrays()
    assert a["past"].dtype == np.float32 and a["future"].shape == (len(a["y"]), 2, 0)
    c, s = a["scale"][0, :, 0]
    col = x[:18, 1].astype(np.float64)  # the input steps: the last window's inputs end at row 17
    assert c == pytest.approx(col.mean()) and s == pytest.approx(col.std(ddof=1) + EPS)
    # the first window: history of 2 steps (rows 0, 1), targets rows 2, 3
    np.testing.assert_array_equal(a["mask"][0], [False, False, True, True])
    np.testing.assert_allclose(w.inverse(a["y"][:1], a["scale"][:1])[0, :, 0], x[2:4, 1], rtol=1e-6)
    np.testing.assert_allclose(a["past"][0, 2:], (x[:2] - np.array([0, c])) / np.array([1, s]), rtol=1e-6)


def test_inverse_undoes_the_scale_for_every_shape():
    df = long_frame([12, 9], 0, 1, static=True)
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y", "x"], feature_cols=["y", "x"],
                        scale="window", n_ahead=2, scale_method="robust")
    a = w.arrays()
    raw = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y", "x"], feature_cols=["y", "x"],
                          n_ahead=2, static_cols=["size"]).arrays()["y"]
    np.testing.assert_allclose(w.inverse(a["y"], a["scale"]), raw, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(w.inverse(a["y"][:, 0], a["scale"]), raw[:, 0], rtol=1e-9, atol=1e-9)
    with pytest.raises(ShapeError, match="targets"):
        w.inverse(a["y"][:, :, :1], a["scale"])
    with pytest.raises(ShapeError, match="windows"):
        w.inverse(a["y"][:3], a["scale"])


def test_plain_windows_are_unchanged_without_forecasting_inputs():
    df = long_frame([8, 6], 1, 0)
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"])
    X, y = w.arrays()
    assert X.shape == (w.n_windows, 3, 3) and y.shape == (w.n_windows, 1)
    assert isinstance(w.batch(0), tuple) and w.forecast is None


# --------------------------------------------------------------------------- bad inputs
BAD = [
    (dict(known_cols=["nope"]), ParameterError, "not columns"),
    (dict(static_cols=["x"]), DataValueError, "varies within series"),
    (dict(min_timesteps=5), ParameterError, "more than timesteps"),
    (dict(min_timesteps=0), ParameterError, "min_timesteps"),
    (dict(known_cols=["k0"], static_cols=["k0"]), ParameterError, "both known_cols and static_cols"),
    (dict(known_cols=["k0"], feature_cols=["x", "k0"]), ParameterError, "also in known_cols"),
    (dict(known_cols=["t"]), ParameterError, "(?s)time column 't'.*time_features"),
    (dict(static_cols=["t"]), ParameterError, "time column 't'"),
    (dict(known_cols=["id"]), ParameterError, "id column 'id'"),
    (dict(scale="global"), ParameterError, "scale="),
    (dict(scale="series", scale_method="minmax"), ParameterError, "scale_method"),
    (dict(missing="drop"), ParameterError, "missing="),
    (dict(missing="mask", fill_value=float("nan")), ParameterError, "fill_value"),
    (dict(lags=[0]), ParameterError, "lags"),
    (dict(lags=[1, 1]), ParameterError, "twice"),
    (dict(lags="7"), ParameterError, r"(?s)got '7' \(str\).*lags=\[7\]"),
    (dict(time_features=["season"]), ParameterError, "not known"),
    (dict(scale="series", sampling_rate=2), ParameterError, "sampling_rate"),
    (dict(scale="series", allow_nan=True), ParameterError, "missing='mask'"),
    (dict(scale="series", return_sequences=True), ParameterError, "return_sequences"),
    (dict(scale="series", gaps="ignore"), ParameterError, "gaps="),
    (dict(scale_method="robust"), ParameterError, "without scale"),
    (dict(fill_value=-1.0), ParameterError, "without missing='mask'"),
    (dict(scale="series", align="middle"), ParameterError, "align="),
]


@pytest.mark.parametrize("kwargs, error, match", BAD)
def test_bad_inputs_give_statebatch_errors_with_fixes(kwargs, error, match):
    df = long_frame([6, 6], 1, 0)
    base = dict(id_col="id", time_col="t", target_cols=["y"])
    with pytest.raises(error, match=match) as info:
        sb.make_windows(df, 4, **{**base, **kwargs})
    assert isinstance(info.value, StatebatchError) and info.value.fix


def test_nan_is_refused_by_default_and_masked_on_request():
    df = long_frame([6, 6], 1, 0)
    df.loc[3, "x"] = np.nan
    with pytest.raises(DataValueError, match="missing='mask'") as info:
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"])
    assert "column 'x'" in str(info.value)
    df.loc[4, "k0"] = np.nan  # a known covariate must be known, also with missing="mask"
    with pytest.raises(DataValueError, match="known_cols"):
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], missing="mask")
    df.loc[4, "k0"] = 0.0
    df.loc[5, "y"] = np.inf
    with pytest.raises(DataValueError, match="infinite"):
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], missing="mask")


def test_other_bad_inputs():
    df = long_frame([6, 6], 1, 0, static=True)
    x = np.zeros((10, 2))
    with pytest.raises(ParameterError, match="DataFrame"):
        sb.make_windows(x, 3, targets="next", known_cols=["k0"])
    with pytest.raises(ParameterError, match="time stamps"):
        sb.make_windows(x, 3, targets="next", time_features=["month"])
    with pytest.raises(DTypeError, match="datetime"):
        sb.make_windows(df.assign(t=df.groupby("id").cumcount()), 3, id_col="id", time_col="t", target_cols=["y"],
                        feature_cols=["y"], time_features=["month"])
    with pytest.raises(ParameterError, match="next-value targets"):
        sb.make_windows(x, 3, scale="series")
    with pytest.raises(ParameterError, match="next-value targets"):
        sb.make_windows(x, 3, targets=np.zeros(10), scale="series")
    with pytest.raises(ParameterError, match="feature positions"):
        sb.make_windows(x, 3, targets="next", target_features=[2], scale="series")
    d2 = df.copy()
    d2["store"] = d2["store"].where(d2["id"] != "s1", None)
    with pytest.raises(DataValueError, match="missing for series 's1'"):
        sb.make_windows(d2, 3, id_col="id", time_col="t", target_cols=["y"], static_cols=["store", "size"])
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], static_cols=["size", "store"])
    with pytest.raises(ParameterError, match="no single X"):
        _ = w.X
    with pytest.raises(ParameterError, match="not scaled"):
        w.inverse(np.zeros((1, 1, 1)), np.zeros((1, 2, 1)))
    with pytest.raises(ParameterError, match="forecasting batch"):
        split_xy((1, 2))


def test_split_xy_gives_keras_inputs_and_targets():
    df = long_frame([6, 6], 1, 0)
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], min_timesteps=1)
    x, y = split_xy(w.batch(0))
    assert set(x) == {"past", "future", "static", "mask"} and y.shape[1:] == (1, 1)


# --------------------------------------------------------------------------- frameworks
def test_torch_named_tuple_batches():
    import torch

    import statebatch.torch as sbt
    from statebatch.torch import forecast_batch

    df = long_frame([9, 7], 1, 0, static=True)
    w = sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], static_cols=["store"],
                        min_timesteps=2, scale="series", n_ahead=2, batch_size=5)
    b = forecast_batch(w.batch(1))
    ref = w.batch(1)
    assert b._fields[:6] == ("past", "future", "static", "y", "mask", "scale")
    for name in ("past", "future", "static", "y", "mask", "scale"):
        assert isinstance(getattr(b, name), torch.Tensor)
        np.testing.assert_array_equal(getattr(b, name).numpy(), ref[name])
    assert b.past_observed is None and b.mask.dtype == torch.bool
    with pytest.raises(ParameterError):
        forecast_batch((1, 2))
    item = sbt.WindowDataset(w)[1]  # the DataLoader path (tests/test_torch_forecast.py): the same named tuple
    assert type(item) is type(b) and item.past_observed is None
    np.testing.assert_array_equal(item.past.numpy(), w.arrays()["past"][1])
    text = str(w.explain())
    assert "forecasting batches" in text and "mask" in text and "per series (standard)" in text


def test_split_xy_selects_named_inputs():
    df = long_frame([6, 6], 1, 0)
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], scale="series")
    x, y = split_xy(w.batch(0), inputs=["past", "future"])
    assert list(x) == ["past", "future"]
    np.testing.assert_array_equal(y, w.batch(0)["y"])
    with pytest.raises(ParameterError, match="min_timesteps"):
        split_xy(w.batch(0), inputs=["past", "mask"])


@pytest.mark.backend
def test_keras_encoder_decoder_with_named_inputs_fits_the_mapping_batches():
    import keras

    from statebatch.keras import WindowDataset

    df = long_frame([30, 18, 25], 1, 0, static=True)
    w = sb.make_windows(df, 6, id_col="id", time_col="t", target_cols=["y"], feature_cols=["y", "x"],
                        known_cols=["k0"], static_cols=["size", "store"], min_timesteps=2, scale="window", n_ahead=3,
                        time_features=["dayofweek"], batch_size=16, shuffle=True, seed=0)
    a = w.arrays()
    T, F = a["past"].shape[1:]
    n, K = a["future"].shape[1:]
    inputs = {"past": keras.Input((T, F), name="past"), "mask": keras.Input((T,), name="mask", dtype="bool"),
              "future": keras.Input((n, K), name="future"), "static": keras.Input((a["static"].shape[1],), name="static"),
              "scale": keras.Input((2, 1), name="scale")}
    _, h, c = keras.layers.LSTM(8, return_state=True)(inputs["past"], mask=inputs["mask"])
    side = keras.layers.Concatenate()([inputs["static"], keras.layers.Flatten()(inputs["scale"])])
    h = keras.layers.Add()([h, keras.layers.Dense(8)(side)])
    decoded = keras.layers.LSTM(8, return_sequences=True)(inputs["future"], initial_state=[h, c])
    model = keras.Model(inputs, keras.layers.Dense(1)(decoded))
    model.compile(optimizer="adam", loss="mse")
    before = [np.array(v) for v in model.get_weights()]
    ds = WindowDataset(w, model=model)  # this model takes "scale" as an input: matched by name
    x0, y0 = ds[0]  # Keras gets (inputs by name, y)
    assert set(x0) == set(inputs) and y0.shape == (16, 3, 1)
    hist = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(hist.history["loss"][0])
    assert any(not np.allclose(b, np.array(v)) for b, v in zip(before, model.get_weights()))
    batch = w.batch(0)
    x, y = split_xy(batch, model=model)
    pred = np.asarray(model.predict_on_batch(x))
    assert pred.shape == y.shape
    assert np.isfinite(w.inverse(pred, batch["scale"])).all()


@pytest.mark.backend
def test_keras_models_get_each_batch_array_in_the_input_of_its_name():
    """A dict-input or list-input model whose inputs are a subset of the batch keys (the batch also has
    scale, mask and observed masks): each input receives the array of its name, never another by position
    (Keras 3 matches an over-full dict to a dict-input model by sorted position, with only a warning)."""
    import keras

    from statebatch.keras import WindowDataset

    df = long_frame([20, 16], 1, 0, static=True)
    w = sb.make_windows(df, 5, id_col="id", time_col="t", target_cols=["y"], feature_cols=["y", "x"],
                        known_cols=["k0"], static_cols=["size", "store"], min_timesteps=2, scale="window", n_ahead=2,
                        missing="mask", dtype="float32", batch_size=8)
    batch = w.batch(0)
    assert {"scale", "mask", "past_observed", "y_observed"} <= set(batch)
    T, F = batch["past"].shape[1:]
    n, K = batch["future"].shape[1:]
    S = batch["static"].shape[1]

    def model_of(form, out_name):
        ins = {"past": keras.Input((T, F), name="past"), "future": keras.Input((n, K), name="future"),
               "static": keras.Input((S,), name="static")}
        out = keras.layers.Flatten()(ins[out_name])  # the output is the array that reached that input
        return keras.Model(ins if form == "dict" else [ins["static"], ins["past"], ins["future"]], out)

    for form in ("dict", "list"):
        for name in ("past", "future", "static"):
            model = model_of(form, name)
            want = batch[name].reshape(len(batch[name]), -1)
            x, y = split_xy(batch, model=model)
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x)), want)
            np.testing.assert_array_equal(y, batch["y"])
            x_ds, _ = WindowDataset(w, model=model)[0]
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x_ds)), want)
            if form == "dict":  # the default keys leave scale and the observed masks out: right too
                x_default, _ = split_xy({k: v for k, v in batch.items() if k != "mask"})
                assert set(x_default) == {"past", "future", "static"}
                np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x_default)), want)
    assert set(split_xy(batch)[0]) == {"past", "future", "static", "mask"}
    # a model input the batch lacks: refused, naming it
    bad_in = {"past": keras.Input((T, F), name="past"), "covariates": keras.Input((S,), name="covariates")}
    bad = keras.Model(bad_in, keras.layers.Concatenate()([keras.layers.Flatten()(bad_in["past"]), bad_in["covariates"]]))
    with pytest.raises(ParameterError, match="covariates"):
        split_xy(batch, model=bad)
    with pytest.raises(ParameterError, match="covariates"):
        WindowDataset(w, model=bad)
    with pytest.raises(ParameterError, match="both inputs= and model="):
        split_xy(batch, inputs=["past"], model=model)
    plain = sb.make_windows(df, 5, id_col="id", time_col="t", target_cols=["y"], feature_cols=["y", "x"])
    with pytest.raises(ParameterError, match="serve \\(X, y\\)"):
        WindowDataset(plain, model=model)


@pytest.mark.backend
def test_keras_predict_on_forecasting_windows_is_per_window_in_natural_order():
    """``statebatch.keras.predict`` on shuffled forecasting windows: each model input gets the batch key
    of its name, and row i is the model's output on window i (as ``model.predict`` over all windows)."""
    import keras

    from statebatch.keras import predict

    df = long_frame([14, 11, 9], 1, 3, static=True)
    w = sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], feature_cols=["y", "x"],
                        known_cols=["k0"], static_cols=["size"], scale="window", n_ahead=2, dtype="float32",
                        batch_size=5, shuffle=True, seed=1)  # 5 does not divide the windows: a short last batch
    a = w.arrays()  # natural order
    T, F = a["past"].shape[1:]
    n, K = a["future"].shape[1:]
    ins = {"past": keras.Input((T, F), name="past"), "future": keras.Input((n, K), name="future"),
           "static": keras.Input((a["static"].shape[1],), name="static")}
    z = keras.layers.Concatenate()([keras.layers.Flatten()(ins[k]) for k in ("past", "future", "static")])
    out = keras.layers.Reshape((n, 1))(keras.layers.Dense(n)(z))
    for model in (keras.Model(ins, out), keras.Model([ins["static"], ins["past"], ins["future"]], out)):
        x = ({k: a[k] for k in ins} if isinstance(model.input, dict) else [a["static"], a["past"], a["future"]])
        want = keras.ops.convert_to_numpy(model(x))
        got = predict(model, w)
        assert got.shape == (w.n_windows, n, 1)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert w.plan().order is not None  # shuffled: batch order is not window order


@pytest.mark.backend
def test_a_model_input_the_windows_hold_with_zero_columns_is_refused():
    """Windows without static_cols/known_cols hold ``static``/``future`` with 0 columns: a model input of
    that name is refused naming the input and the argument that fills it, never fed an empty array."""
    import keras

    from statebatch.keras import WindowDataset, predict

    df = long_frame([12, 10], 1, 0, static=True)
    kw = dict(id_col="id", time_col="t", target_cols=["y"], feature_cols=["y", "x"], n_ahead=2, batch_size=4)
    cases = [(sb.make_windows(df, 4, known_cols=["k0"], **kw), "static", 1, "static_cols"),
             (sb.make_windows(df, 4, static_cols=["size"], **kw), "future", (2, 1), "known_cols")]
    for w, name, shape, fix in cases:
        assert w.batch(0)[name].shape[-1] == 0  # the key is there, with 0 columns
        ins = {"past": keras.Input(w.batch(0)["past"].shape[1:], name="past"), name: keras.Input(shape if isinstance(shape, tuple)
                                                                             else (shape,), name=name)}
        model = keras.Model(ins, keras.layers.Dense(1)(keras.layers.Concatenate()(
            [keras.layers.Flatten()(v) for v in ins.values()])))
        for call, arg in ((split_xy, w.batch(0)), (WindowDataset, w)):
            with pytest.raises(ParameterError, match=f"\\['{name}'\\].*0 columns") as info:
                call(arg, model=model)
            assert fix in info.value.fix
        with pytest.raises(ParameterError, match=f"\\['{name}'\\].*0 columns") as info:
            predict(model, w)
        assert fix in info.value.fix
        # a model without that input is served as before
        past_only = keras.Model(ins["past"], keras.layers.Dense(1)(keras.layers.Flatten()(ins["past"])))
        assert predict(past_only, w).shape == (w.n_windows, 1)
        assert split_xy(w.batch(0), model=past_only)[0].shape == w.batch(0)["past"].shape


def test_split_xy_refuses_a_model_whose_inputs_cannot_be_read():
    class Unbuilt:  # as an unbuilt Sequential: reading .input raises
        @property
        def input(self):
            raise AttributeError("The layer has never been called")

    w = sb.make_windows(long_frame([6, 6], 1, 0), 3, id_col="id", time_col="t", target_cols=["y"], scale="window")
    with pytest.raises(ParameterError, match="cannot be read") as info:
        split_xy(w.batch(0), model=Unbuilt())
    assert "name='past'" in info.value.fix


# --------------------------------------------------------------------------- the plan alone
@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(0, 25), min_size=1, max_size=5), timesteps=st.integers(1, 8),
       min_timesteps=st.integers(1, 8), stride=st.integers(1, 4), target_steps=st.integers(0, 3),
       start_index=st.integers(0, 3), remainder=st.sampled_from(["keep", "drop"]), batch_size=st.integers(1, 5),
       shuffle=st.booleans())
def test_variable_history_plan(lengths, timesteps, min_timesteps, stride, target_steps, start_index, remainder,
                               batch_size, shuffle):
    from statebatch.plans.windows import plan_windows

    m = min(min_timesteps, timesteps)

    def expected_starts(n):
        # every start on the stride grid from start_index whose history (>= m) and targets fit, and no other
        return [st_ for st_ in range(start_index - timesteps, n)
                if (st_ - start_index) % stride == 0 and st_ + timesteps - max(st_, start_index) >= m
                and st_ + timesteps + target_steps <= n]

    try:
        plan = plan_windows(lengths, timesteps, stride=stride, start_index=start_index, target_steps=target_steps,
                            min_timesteps=m, batch_size=batch_size, remainder=remainder,
                            shuffle=shuffle, seed=0)
    except DataValueError as exc:
        if "no window fits" in str(exc):
            assert not any(expected_starts(n) for n in lengths)
        else:  # remainder="drop" with fewer windows than one batch
            assert remainder == "drop" and "every window out" in str(exc)
        return
    starts = plan.starts()
    s = plan.series_of(np.arange(plan.n_windows))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rel = starts - offsets[s]
    for k, n in enumerate(lengths):
        expected = expected_starts(n)
        assert rel[s == k].tolist() == expected
        # every step of the series is in some window (inputs or targets) or reported left out
        used = np.zeros(n, bool)
        for st_ in expected:
            used[max(st_, start_index): st_ + timesteps + target_steps] = True
        for lo in plan.left_out:
            if lo.series != k or lo.reason.startswith("remainder="):
                continue
            if lo.reason.startswith("between windows"):  # one entry for the same gap after several windows
                gap = stride - timesteps - target_steps
                pieces = [(lo.first_step + i * stride, gap) for i in range(lo.steps // gap)]
            else:
                pieces = [(lo.first_step, lo.steps)]
            for a, n_ in pieces:
                assert not used[a: a + n_].any(), lo
                used[a: a + n_] = True
        assert used.all(), (k, used)
    if remainder == "drop":
        dropped = [lo for lo in plan.left_out if lo.reason.startswith("remainder=")]
        assert len(dropped) == plan.n_windows % batch_size
        # a dropped window reports its real steps only (not the padding before start_index)
        assert all(lo.first_step >= start_index and lo.first_step + lo.steps <= lengths[lo.series] for lo in dropped)


def test_plain_batches_fast_path_equals_batch_k():
    # Windows.batches() of one in-memory series skips batch(k)'s per-call checks: same arrays
    x = np.random.default_rng(0).standard_normal((203, 3)).astype(np.float32)
    for kw in (dict(targets="next"), dict(), dict(targets="next", n_ahead=2, remainder="drop")):
        w = sb.make_windows(x, 7, batch_size=16, stride=2, **kw)
        got = list(w.batches())
        assert len(got) == w.n_batches
        for k, b in enumerate(got):
            ref = w.batch(k)
            assert len(b) == len(ref)
            for a, r in zip(b, ref):
                np.testing.assert_array_equal(a, r)
                assert a.flags.c_contiguous and a.flags.writeable == r.flags.writeable
                assert np.shares_memory(a, x) == np.shares_memory(r, x)
                assert not (np.shares_memory(a, x) and a.flags.writeable)  # a view of the data is read-only


@pytest.mark.parametrize("kind", ["int", "float", "datetime"])
def test_holes_are_found_with_evenly_spaced_series_next_to_them(kind):
    # evenly spaced series skip pandas' frequency inference; a hole in another series is still refused
    df = long_frame([12, 12, 12], 0, 0)
    steps = df.groupby("id").cumcount().to_numpy() * 2
    steps = np.where((df["id"] == "s1").to_numpy() & (steps >= 10), steps + 2, steps)  # s1 jumps 8 -> 12
    df["t"] = {"int": steps, "float": steps * 0.5,
               "datetime": pd.Timestamp("2024-01-01") + pd.to_timedelta(steps, unit="D")}[kind]
    with pytest.raises(DataValueError, match="series 's1'"):
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"])
    w = sb.make_windows(df[df["id"] != "s1"], 3, id_col="id", time_col="t", target_cols=["y"])
    assert w.n_windows == 2 * (12 - 3)


def test_lag_steps_are_not_reported_left_out():
    df = long_frame([10, 10], 0, 0)
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], lags=[2], start_index=1)
    # steps 1, 2 of each series are read as lag values; step 0 is before start_index
    assert sorted((lo.series, lo.first_step, lo.steps) for lo in w.left_out if "start_index" in lo.reason) == \
        [("s0", 0, 1), ("s1", 0, 1)]
    sid = w.series_ids[w.series[0]]  # the first window's first input step is step 3; its lag 2 is step 1
    assert w.arrays()["past"][0, 0, -1] == df[df["id"] == sid].sort_values("t")["y"].iloc[1]
    w0 = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], lags=[2])
    assert not [lo for lo in w0.left_out if "start_index" in lo.reason]


def test_gaps_split_keeps_static_and_calendar_per_piece():
    df = long_frame([12, 12], 1, 0, static=True)
    df = df[~((df["id"] == "s1") & (df["t"] == pd.Timestamp("2024-01-06")))]  # a hole in s1
    with pytest.warns(sb.StatebatchWarning, match="split"):
        w = sb.make_windows(df, 2, id_col="id", time_col="t", target_cols=["y"], feature_cols=["y", "x"],
                            known_cols=["k0"], static_cols=["store"], time_features=["dayofmonth"], gaps="split")
    assert sorted(map(str, w.series_ids)) == sorted(map(str, ["s0", ("s1", 0), ("s1", 1)]))
    a = w.arrays()
    store = {sid: a["static"][w.series == k, 0] for k, sid in enumerate(w.series_ids)}
    assert (store[("s1", 0)] == store[("s1", 1)][0]).all() and (store["s0"] != store[("s1", 0)][0]).all()
    # the first window after the hole: inputs 7th and 8th January, target the 9th
    k = w.series_ids.index(("s1", 1))
    first = np.flatnonzero(w.series == k)[0]
    np.testing.assert_allclose(a["past"][first, :, -1], (np.array([7, 8]) - 1) / 30 - 0.5)
    np.testing.assert_allclose(a["future"][first, 0, -1], (9 - 1) / 30 - 0.5)


# --------------------------------------------------------------------------- series scale without leaks
def _ramp_frame(n=40):
    return pd.DataFrame({"id": np.repeat(["a", "b"], n), "t": np.tile(np.arange(n), 2),
                         "y": np.concatenate([np.arange(n, dtype=float), 100.0 + 3.0 * np.arange(n) ** 1.5])})


def test_series_scale_reads_only_input_steps_of_holdout_windows():
    """Holdout windows (start_index/end_index): the series scale is read from the steps that are inputs
    of the windows, never from the held-out targets after the last input (hand-computed in numpy)."""
    df = _ramp_frame()
    for kw, stride in ((dict(start_index=12), 1), (dict(start_index=12, end_index=20), 1),
                       (dict(start_index=5, end_index=33), 3), (dict(end_index=12), 1)):
        w = sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], scale="series", n_ahead=2,
                            stride=stride, **kw)
        start, end = kw.get("start_index", 0), kw.get("end_index", 40)
        # last input step of the last window: windows start at start + k*stride, inputs 4 steps, 2 targets after
        last_input = max(e for e in range(start + 3, end - 2) if (e - start - 3) % stride == 0)
        for k, sid in enumerate(["a", "b"]):
            vals = df[df.id == sid].y.to_numpy()[start:last_input + 1]
            want = [vals.mean(), vals.std(ddof=1) + EPS]
            np.testing.assert_allclose(w.forecast.series_scale.values[k, :, 0], want, rtol=1e-12)
            assert w.forecast.series_scale.last_step[k] == last_input
            # and the held-out targets are not in it: the targets of the last window end after last_input
            assert last_input + 2 <= end - 1
        got = w.arrays()["scale"]
        np.testing.assert_allclose(got, w.forecast.series_scale.values[w.series])
    # the repro: two ramps y = 0..39, T=4, start_index=12, end_index=20 -> inputs 12..17, center 14.5 (not 15.5)
    df2 = pd.DataFrame({"id": np.repeat(["a", "b"], 40), "t": np.tile(np.arange(40), 2),
                        "y": np.tile(np.arange(40.0), 2)})
    w = sb.make_windows(df2, 4, id_col="id", time_col="t", target_cols=["y"], scale="series", start_index=12,
                        end_index=20)
    assert w.arrays()["scale"][:, 0, 0].tolist() == [15.0] * len(w.arrays()["scale"])  # inputs 12..18, target 19


def test_holdout_windows_reuse_the_training_series_scale():
    df = _ramp_frame()
    train = sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], scale="series", end_index=24,
                            scale_method="robust")
    test = sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], scale=train, start_index=20,
                           stride=2)
    same = sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], start_index=20, stride=2,
                           scale=train.forecast.series_scale, scale_method="robust")
    for k, sid in enumerate(["a", "b"]):
        vals = df[df.id == sid].y.to_numpy()[:23]  # train inputs: steps 0..22 (the last target: 23)
        q25, q50, q75 = np.percentile(vals, [25, 50, 75])
        want = np.array([q50, (q75 - q25) / 2 + EPS])
        rows = test.series == k
        np.testing.assert_allclose(test.arrays()["scale"][rows, :, 0], np.tile(want, (rows.sum(), 1)), rtol=1e-12)
        y_raw = np.array([df[df.id == sid].y.to_numpy()[s + 4] for s in test.start[rows]])
        np.testing.assert_allclose(test.arrays()["y"][rows, 0, 0], (y_raw - want[0]) / want[1], rtol=1e-12)
    np.testing.assert_array_equal(same.arrays()["scale"], test.arrays()["scale"])
    assert test.forecast.scale_method == "robust"
    with pytest.raises(ParameterError, match="fitted with 'robust'"):
        sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], scale=train, scale_method="minmax")
    plain = sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], scale="window")
    with pytest.raises(ParameterError, match="without a series scale"):
        sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], scale=plain)
    with pytest.raises(ParameterError, match="no fitted scale"):
        sb.make_windows(df.assign(id=df.id.replace("b", "c")), 4, id_col="id", time_col="t", target_cols=["y"],
                        scale=train)
    with pytest.raises(ParameterError, match="scale must be"):
        sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], scale=3)


# --------------------------------------------------------------------------- the id as a static categorical
@pytest.mark.parametrize("numeric_ids", [False, True])
def test_id_column_is_a_static_categorical_with_its_vocabulary(numeric_ids):
    """static_cols may name the id column (as pytorch-forecasting's group ids): integer codes of the sorted
    ids, even numeric ones (a label, not a magnitude), vocabulary kept; hand-built reference per window."""
    df = long_frame([7, 9, 6], 1, 3, static=True)
    if numeric_ids:
        df["id"] = df["id"].map({"s0": 30, "s1": 10, "s2": 20})
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], feature_cols=["y", "x"],
                        static_cols=["id", "size"])
    vocab = sorted(df["id"].unique())
    assert w.forecast.static_vocab == {"id": vocab} and w.forecast.static_names == ["id", "size"]
    static = w.arrays()["static"]
    for i, k in enumerate(w.series):
        sid = w.series_ids[k]
        size = float(df.loc[df["id"] == sid, "size"].iloc[0])
        assert static[i].tolist() == [float(vocab.index(sid)), size]


def test_a_text_known_column_is_refused_naming_known_cols_and_static_cols():
    # a newcomer's mistake: a per-series category (text) passed as a known covariate; the generic
    # "non-numeric columns ... drop them with feature_cols" message pointed at the wrong parameter
    df = long_frame([6, 6], 1, 0, static=True)
    with pytest.raises(DTypeError, match=r"(?s)known_cols \['store'\].*static_cols") as info:
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], feature_cols=["y"],
                        known_cols=["k0", "store"])
    assert "known_cols" in info.value.fix and "static_cols" in info.value.fix


def test_a_misspelt_target_column_is_named_before_other_columns_are_read():
    # the misspelt target, not a text column the default features would have read, is the mistake to report
    df = long_frame([6, 6], 1, 0, static=True)
    with pytest.raises(ParameterError, match=r"\['yy'\]"):
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["yy"])


def test_no_window_fits_names_end_index_when_it_is_what_cuts_the_series():
    df = long_frame([10, 10], 1, 0)
    with pytest.raises(DataValueError, match="end_index=5"):
        sb.make_windows(df, 4, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], n_ahead=2,
                        end_index=5)


def test_the_guides_holdout_start_with_lags_targets_the_first_step_after_the_cut():
    # docs/guides/forecasting.md: with lags, holdout windows start at cut - T - max(lags); cut - T would make
    # the first max(lags) held-out steps targets of no window at all
    df = _ramp_frame()
    kw = dict(id_col="id", time_col="t", target_cols=["y"], lags=[3])
    cut, T = 20, 4
    train = sb.make_windows(df, T, scale="series", end_index=cut, **kw)
    test = sb.make_windows(df, T, scale=train, start_index=cut - T - 3, **kw)
    late = sb.make_windows(df, T, scale=train, start_index=cut - T, **kw)
    for k in range(2):
        assert train.start[train.series == k].max() + T == cut - 1  # the last training target: step cut - 1
        assert test.start[test.series == k].min() + T == cut
        assert late.start[late.series == k].min() + T == cut + 3


def test_a_window_with_one_observed_target_step_is_scaled_by_epsilon_alone():
    # docs/guides/forecasting.md: fewer than two observed steps -> std 0 -> scale EPS, y about 1,000x its distance
    df = pd.DataFrame({"id": "a", "t": np.arange(6), "y": [26.0, 25.0, 29.0, 31.0, 30.0, 28.0]})
    w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], min_timesteps=1, scale="window")
    a = w.arrays()
    assert a["mask"][0].tolist() == [False, False, True]
    np.testing.assert_array_equal(a["scale"][0, :, 0], [26.0, EPS])
    assert a["y"][0, 0, 0] == (25.0 - 26.0) / EPS == -1024.0


@pytest.mark.parametrize("kw", [dict(known_cols=["y"]), dict(static_cols=["y"]), dict(known_cols=["k0", "y"])])
def test_a_target_passed_as_a_covariate_is_named_as_the_target(kw):
    # without feature_cols the message used to blame feature_cols, which the user never passed
    df = long_frame([6, 6], 1, 0)
    with pytest.raises(ParameterError, match=r"target_cols \['y'\]") as info:
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], **kw)
    assert "feature_cols ['y']" not in str(info.value)


@pytest.mark.parametrize("param", ["known_cols", "static_cols", "feature_cols", "target_cols"])
def test_a_set_of_column_names_is_refused_as_its_order_changes_between_processes(param):
    # {"p", "q"} iterates in an order that depends on PYTHONHASHSEED: the columns of past/future would be
    # swapped between the training process and the serving one, silently
    df = long_frame([6, 6], 2, 0, static=True)
    kw = dict(id_col="id", time_col="t", target_cols=["y"], feature_cols=["y", "x"])
    kw[param] = {"known_cols": {"k0", "k1"}, "static_cols": {"store", "size"}, "feature_cols": {"y", "x"},
                 "target_cols": {"y", "x"}}[param]
    with pytest.raises(ParameterError, match=f"(?s){param}.*set.*list") as info:
        sb.make_windows(df, 3, **kw)
    assert "list" in info.value.fix


def test_static_vocab_keeps_the_training_codes_on_a_frame_of_fewer_series():
    # a holdout/serving frame without some categories coded its text statics anew: 'north' read as training's 'east'
    df = long_frame([6, 6, 6], 1, 0, static=True)  # stores: north, south, east
    kw = dict(id_col="id", time_col="t", target_cols=["y"], static_cols=["store", "id", "size"])
    train = sb.make_windows(df, 3, **kw)
    assert train.forecast.static_vocab["store"] == ["east", "north", "south"]
    sub = df[df.id != "s2"]  # no 'east' store left
    fresh = sb.make_windows(sub, 3, **kw)
    assert fresh.forecast.static_vocab["store"] == ["north", "south"]  # the codes shift without the vocabulary
    for vocab in (train, train.forecast.static_vocab):
        held = sb.make_windows(sub, 3, static_vocab=vocab, **kw)
        assert held.forecast.static_vocab == train.forecast.static_vocab
        st = held.arrays()["static"]
        for k in range(len(st)):  # every window's codes mean its own series' values in the training vocabulary
            sid = held.series_ids[held.series[k]]
            row = sub[sub.id == sid].iloc[0]
            assert train.forecast.static_vocab["store"][int(st[k, 0])] == row["store"]
            assert train.forecast.static_vocab["id"][int(st[k, 1])] == sid
            assert st[k, 2] == row["size"]
    new = df.assign(store=df.store.replace("south", "west"))
    with pytest.raises(DataValueError, match=r"(?s)static column 'store'.*\['west'\].*not in static_vocab"):
        sb.make_windows(new, 3, static_vocab=train, **kw)
    with pytest.raises(ParameterError, match="static_vocab"):
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k0"], static_vocab=train)
    with pytest.raises(ParameterError, match="static_vocab"):
        sb.make_windows(df, 3, static_vocab={"shop": ["a"]}, **kw)
