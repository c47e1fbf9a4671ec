import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import statebatch as sb
from statebatch.sklearn import (INAPPLICABLE_CHECKS, StatefulTransformer, WindowTransformer, time_split,
                                transform_xy)


@pytest.mark.parametrize("est", [WindowTransformer(timesteps=3), StatefulTransformer(timesteps=2, batch_size=2)],
                         ids=["WindowTransformer", "StatefulTransformer"])
def test_sklearn_estimator_checks(est):
    """Every scikit-learn check passes except exactly the documented inapplicable ones."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    assert failed == set(INAPPLICABLE_CHECKS), failed ^ set(INAPPLICABLE_CHECKS)
    assert len(passed) > 30
    assert {"check_get_params_invariance", "check_set_params", "check_n_features_in",
            "check_dont_overwrite_parameters", "check_fit_idempotent"} <= passed


def test_contract_params_clone_and_feature_names():
    wt = WindowTransformer(timesteps=4, stride=2)
    assert wt.get_params()["timesteps"] == 4
    wt.set_params(timesteps=5)
    c = clone(wt)
    assert c.get_params() == wt.get_params() and c is not wt
    df = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) * 2})
    wt.fit(df)
    assert wt.n_features_in_ == 2 and list(wt.feature_names_in_) == ["a", "b"]
    assert list(wt.get_feature_names_out()) == ["a", "b"]
    out = wt.transform(df)
    assert out.shape == (8, 5, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1, :, 1], np.arange(2, 7) * 2)
    with pytest.raises(ValueError, match="features"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn: fitted with feature names
        wt.transform(np.zeros((10, 3)))
    # set_output leaves the 3-D array as it is
    assert isinstance(wt.set_output(transform="pandas").transform(df), np.ndarray)


def test_pipeline_scaler_fitted_on_train_only_and_aligned_targets():
    rng = np.random.default_rng(0)
    series = np.cumsum(rng.normal(size=(300, 3)), axis=0) + 50
    target = series[:, 0]
    train, val, test, info = time_split(series, val=0.2, test=0.2, gap=5)
    assert (len(train), len(val), len(test), info["rows_left_out_by_gap"]) == (170, 60, 60, 10)
    pipe = make_pipeline(StandardScaler(), WindowTransformer(timesteps=10, horizon=1))
    pipe.fit(train)
    np.testing.assert_allclose(pipe[0].mean_, train.mean(axis=0))  # statistics of the training rows only
    Xv, yv = transform_xy(pipe, val, target[230:290])
    assert Xv.shape == (60 - 10, 10, 3) and yv.shape == (50,)
    scaled = (val - train.mean(axis=0)) / train.std(axis=0)
    for i in (0, 17, 49):
        np.testing.assert_allclose(Xv[i], scaled[i:i + 10], rtol=1e-5)
        assert yv[i] == target[230 + i + 10]  # the step after the window
    assert pipe.transform(val).shape == Xv.shape  # transform and transform_xy use the same plan
    pandas_pipe = make_pipeline(StandardScaler(), WindowTransformer(timesteps=10)).set_output(transform="pandas")
    frame = pd.DataFrame(train, columns=["a", "b", "c"])
    assert isinstance(pandas_pipe.fit(frame)[0].transform(frame), pd.DataFrame)  # the scaler returns pandas
    assert pandas_pipe.transform(frame).shape == (160, 10, 3)  # the last row has no next step
    assert list(pandas_pipe[-1].get_feature_names_out()) == ["a", "b", "c"]
    with pytest.raises(sb.LengthMismatchError, match="aligned row by row"):
        transform_xy(pipe, val, target[:10])


def test_horizon_zero_targets_are_the_last_step():
    X = np.arange(30.0).reshape(15, 2)
    y = np.arange(15) * 10
    Xw, yw = WindowTransformer(timesteps=4, horizon=0).fit(X).transform_xy(X, y)
    np.testing.assert_array_equal(yw, (np.arange(12) + 3) * 10)


def test_one_target_convention_default_is_the_next_step():
    """WindowTransformer, StatefulTransformer and make_windows all default to the step after the input."""
    X = np.arange(30.0).reshape(15, 2)
    y = np.arange(15) * 10
    Xw, yw = WindowTransformer(timesteps=4).fit(X).transform_xy(X, y)
    np.testing.assert_array_equal(yw, (np.arange(11) + 4) * 10)  # row after each window's last row
    nxt = sb.make_windows(X, 4, targets="next")  # default horizon=1: the row after the window
    np.testing.assert_array_equal(nxt.X, Xw)
    np.testing.assert_array_equal(nxt.y, X[4:])
    st = StatefulTransformer(timesteps=2, batch_size=1, return_sequences=True).fit(X)
    a = st.arrange(X, y)
    valid = a.sample_weight > 0
    np.testing.assert_array_equal(a.y[..., 0][valid], a.X[..., 0][valid] * 5 + 10)  # y[t + 1] = (2t + 2) * 5


def test_stateful_transform_and_transform_xy_agree():
    """81 rows into 4 lanes of 10: transform used to keep the last row (3 batches) while transform_xy
    dropped it for want of a target (2 batches)."""
    X = np.arange(162.0).reshape(81, 2)
    st = StatefulTransformer(timesteps=10, batch_size=4).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shapes = {st.transform(X).shape, st.transform_xy(X)[0].shape, st.transform_xy(X, X[:, 0])[0].shape}
    assert shapes == {(8, 10, 2)}
    df = pd.DataFrame({"id": np.repeat(["a", "b"], 40), "t": np.tile(np.arange(40), 2),
                       "v": np.r_[np.arange(40.0), 100 + np.arange(40.0)]})
    st = StatefulTransformer(timesteps=5, batch_size=2, id_col="id", time_col="t").fit(df)
    Xa, ya, w = st.transform_xy(df.sample(frac=1, random_state=1), df["v"].sample(frac=1, random_state=1) * 2)
    assert Xa.shape == st.transform(df).shape
    np.testing.assert_array_equal(ya[..., 0][w > 0], (Xa[..., 0][w > 0] + 1) * 2)  # next value of its own series


def test_long_frame_with_id_column():
    df = pd.DataFrame({"id": ["a"] * 10 + ["b"] * 6, "t": list(range(10)) + list(range(6)),
                       "v": np.r_[np.arange(10.0), 100 + np.arange(6.0)], "w": 1.0})
    wt = WindowTransformer(timesteps=3, horizon=1, id_col="id", time_col="t").fit(df)
    assert list(wt.get_feature_names_out()) == ["v", "w"]
    X, y = wt.transform_xy(df.sample(frac=1, random_state=0), "v")
    assert X.shape == (7 + 3, 3, 2)
    np.testing.assert_array_equal(y[:, 0], X[:, -1, 0] + 1)  # next value of the same series only
    splits = time_split(df, val=0.25, test=0.25, id_col="id", time_col="t")
    assert [len(p) for p in splits[:3]] == [5 + 3, 2 + 2, 3 + 1]


@pytest.mark.parametrize("cls", [WindowTransformer, StatefulTransformer])
def test_a_list_of_several_series_is_refused_with_the_way_out(cls):
    """Several series as a list: numpy's "inhomogeneous shape" (different lengths) or scikit-learn's "dim 3"
    (equal lengths) would say nothing about the cause; the error names it and the long-frame fix."""
    est = cls(timesteps=7) if cls is WindowTransformer else cls(timesteps=7, batch_size=2)
    for X, said in [([np.ones((31, 2)), np.ones((30, 2))], "2 series of different lengths (31, 30)"),
                    ([np.ones((31, 2))] * 3, "3 series (31 steps each)"),
                    ([np.ones(12), np.ones(9)], "of different lengths (12, 9)")]:
        with pytest.raises(sb.ShapeError, match="one series per call") as err:
            est.fit_transform(X)
        text = str(err.value)
        assert said in text and "id_col=" in text and cls.__name__ in text
        assert "inhomogeneous" not in text and "fitted on" not in text
    # a list of rows (one series) is still one series
    assert WindowTransformer(2).fit_transform([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]).shape == (2, 2, 2)


def test_stateful_transformer_arranges():
    X = np.arange(200.0).reshape(100, 2)
    st = StatefulTransformer(timesteps=5, batch_size=4).fit(X)
    Xa, ya, w = st.transform_xy(X)
    assert Xa.shape[1:] == (5, 2) and len(Xa) % 4 == 0
    np.testing.assert_array_equal(ya[w == 1], (Xa + 2)[w == 1])  # next step: +2 per row here
    arranged = st.arrange(X)
    assert isinstance(arranged, sb.Arranged) and arranged.batch_size == 4
    assert st.transform(X).shape[0] % 4 == 0


def test_time_split_errors():
    with pytest.raises(sb.ParameterError):
        time_split(np.zeros((10, 1)), val=0.6, test=0.5)
    with pytest.raises(sb.ParameterError, match="too few"):
        time_split(np.zeros((10, 1)), val=0.3, test=0.3, gap=3)


# ---------------------------------------------------------------- one vocabulary: InputOptions, NaN and inf apart
def _long(n=12):
    return pd.DataFrame({"id": np.repeat(["a", "b"], n), "t": np.tile(np.arange(n), 2),
                         "v": np.arange(2.0 * n), "w": np.arange(2.0 * n) * 10})


@pytest.mark.parametrize("cls", [WindowTransformer, StatefulTransformer])
def test_options_give_the_same_result_as_the_keywords_and_survive_clone(cls):
    df = _long()
    kw = dict(timesteps=3) if cls is WindowTransformer else dict(timesteps=2, batch_size=2)
    by_keywords = cls(**kw, id_col="id", time_col="t").fit(df)
    opts = sb.InputOptions(id_col="id", time_col="t")
    by_options = cls(**kw, options=opts).fit(df)
    np.testing.assert_array_equal(by_options.transform(df), by_keywords.transform(df))
    assert by_options.get_params()["options"] is opts  # stored as given (scikit-learn's contract)
    c = clone(by_options)
    assert c.get_params()["options"] == opts and not hasattr(c, "input_options_")
    assert by_options.input_options_.id_col == "id"


def test_options_dtype_feature_cols_and_conflicts():
    df = _long()
    wt = WindowTransformer(3, options=sb.InputOptions(id_col="id", time_col="t", feature_cols=["w"],
                                                      dtype="float64")).fit(df)
    out = wt.transform(df)
    assert out.dtype == np.float64 and out.shape == (2 * (12 - 3), 3, 1)  # horizon 1: one target step kept out
    np.testing.assert_array_equal(out[0, :, 0], [0.0, 10.0, 20.0])  # the w column only
    with pytest.raises(sb.errors.ParameterError, match="given twice"):
        WindowTransformer(3, id_col="t", options=sb.InputOptions(id_col="id")).fit(df)
    with pytest.raises(sb.errors.ParameterError, match="target_cols"):
        WindowTransformer(3, options=sb.InputOptions(id_col="id", target_cols=["w"])).fit(df)
    with pytest.raises(sb.errors.ParameterError, match="feature_cols"):
        WindowTransformer(3, options=sb.InputOptions(feature_cols=["v"])).fit(df[["v", "w"]])
    with pytest.raises(sb.errors.ParameterError, match="nope"):
        WindowTransformer(3, options=sb.InputOptions(id_col="id", feature_cols=["nope"])).fit(df)


@pytest.mark.parametrize("long", [False, True], ids=["array", "long frame"])
def test_nan_and_inf_are_allowed_apart(long):
    def data(bad):
        x = np.arange(24.0)
        x[5] = bad
        if long:
            return pd.DataFrame({"id": np.repeat([0, 1], 12), "v": x})
        return x[:, None]

    cols = dict(id_col="id") if long else {}
    refuse_nan = WindowTransformer(3, options=sb.InputOptions(allow_inf=True, **cols))
    refuse_inf = WindowTransformer(3, options=sb.InputOptions(allow_nan=True, **cols))
    out = refuse_inf.fit(data(np.nan)).transform(data(np.nan))
    assert np.isnan(out).sum() == 3  # the NaN step sits in three windows, let through
    with pytest.raises(sb.errors.DataValueError, match=r"inf .*allow_inf is False"):
        refuse_inf.transform(data(np.inf))
    out = refuse_nan.fit(data(np.inf)).transform(data(np.inf))
    assert np.isinf(out).sum() == 3
    with pytest.raises(sb.errors.DataValueError, match=r"NaN .*allow_nan is False"):
        refuse_nan.transform(data(np.nan))
    with pytest.raises(sb.errors.DataValueError):  # the default refuses both
        WindowTransformer(3, **cols).fit(data(np.inf)).transform(data(np.inf))


def test_targets_with_inf_are_refused_when_only_nan_is_allowed():
    X = np.arange(20.0)[:, None]
    y = np.arange(20.0)
    y[7] = np.inf
    st = StatefulTransformer(2, 2, options=sb.InputOptions(allow_nan=True)).fit(X)
    with pytest.raises(sb.errors.DataValueError, match=r"y holds 1 inf"):
        st.transform_xy(X, y)
    wt = WindowTransformer(3, options=sb.InputOptions(allow_nan=True)).fit(X)
    with pytest.raises(sb.errors.DataValueError, match=r"y holds 1 inf"):
        wt.transform_xy(X, y)
    y[7] = np.nan
    Xw, yw = wt.transform_xy(X, y)
    assert np.isnan(yw).sum() == 1


def test_stateful_transformer_remainder_is_the_deprecated_name_of_tail():
    X = np.arange(23.0)[:, None]
    new = StatefulTransformer(5, 2, tail="drop").fit(X).transform(X)
    with pytest.warns(FutureWarning, match="now tail"):
        old = StatefulTransformer(5, 2, remainder="drop").fit(X)
    np.testing.assert_array_equal(old.transform(X), new)
    assert new.shape[0] < StatefulTransformer(5, 2).fit(X).transform(X).shape[0]  # "pad" keeps the tail
    with pytest.raises(sb.ParameterError, match="disagree"), pytest.warns(FutureWarning):
        StatefulTransformer(5, 2, tail="error", remainder="drop").fit(X)
