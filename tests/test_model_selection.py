"""scikit-learn model selection across windowing: WindowRegressor, WindowSplit, window_scorer, SeriesScaler."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import statebatch as sb
from statebatch.sklearn import SeriesScaler, WindowRegressor, WindowSplit, window_scorer

SEEN: list = []  # what each probe was fitted on (GridSearchCV clones estimators, so a module list)


class Probe(RegressorMixin, BaseEstimator):
    """Ridge that records its training windows and targets; column 0 of the data is the row number."""

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y):
        SEEN.append(("fit", X.copy(), np.asarray(y).copy()))
        self.model_ = Ridge(alpha=self.alpha).fit(X[:, 1::2], y)  # the values, not the row numbers
        return self

    def predict(self, X):
        SEEN.append(("predict", X.copy(), None))
        return self.model_.predict(X[:, 1::2])


def _lagged(n=600, lag=5, seed=0):
    """y[t] = x[t - lag] + noise: windows shorter than lag + 1 rows cannot see the cause."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = np.r_[np.zeros(lag), x[:-lag]] + 0.05 * rng.normal(size=n)
    return np.column_stack([np.arange(n, dtype=float), x]), y


def test_gridsearch_tunes_timesteps_and_inner_params_without_leaks():
    X, y = _lagged()
    SEEN.clear()
    history = 8  # the largest timesteps (8) + horizon (1) - 1
    cv = WindowSplit(n_splits=3, history=history, gap=2)
    search = GridSearchCV(WindowRegressor(Probe(), timesteps=3),
                          {"timesteps": [3, 8], "estimator__alpha": [0.1, 10.0]}, cv=cv, refit=False,
                          error_score="raise")
    search.fit(X, y)
    assert search.best_params_["timesteps"] == 8  # lag 5 + the next step: only 8 steps see it
    assert search.cv_results_["mean_test_score"][np.argmax([p["timesteps"] == 8 for p in search.cv_results_["params"]])] > 0.9
    # Independent leak check: column 0 holds the row number, so every window says which rows it read.
    folds = list(cv.split(X))
    fits = [s for s in SEEN if s[0] == "fit"]
    predicts = [s for s in SEEN if s[0] == "predict"]
    assert len(fits) == len(predicts) == 4 * len(folds)
    for (_, Xw, yw), (_, Xp, _) in zip(fits, predicts):
        T = Xw.shape[1] // 2
        train_rows = Xw.reshape(len(Xw), T, 2)[:, :, 0].astype(int)
        train_targets = train_rows[:, -1] + 1  # horizon 1
        np.testing.assert_allclose(yw, y[train_targets])  # targets are y of the row after each window
        test_rows = Xp.reshape(len(Xp), T, 2)[:, :, 0].astype(int)
        test_targets = test_rows[:, -1] + 1
        fold = [f for f in folds if f[0][-1] == train_targets.max()]  # the fold whose last row is a target
        assert len(fold) == 1
        train, test = fold[0]
        assert set(train_rows.ravel()) <= set(train) and set(train_targets) <= set(train)
        assert set(test_rows.ravel()) <= set(test) and set(test_targets) <= set(test)
        assert train_targets.max() < test_rows.min()  # no training window reads or targets a test row
        assert not set(test_targets) & set(train_targets)
        assert test_rows.min() - train_targets.max() > cv.gap  # the gap is really left out


def test_windowsplit_layout_and_errors():
    folds = list(WindowSplit(n_splits=3, history=4, gap=1, test_size=5).split(np.zeros((40, 1))))
    assert [(tr[0], tr[-1], te[0], te[-1]) for tr, te in folds] == [(0, 19, 21, 29), (0, 24, 26, 34), (0, 29, 31, 39)]
    with pytest.raises(sb.ParameterError, match="too few"):
        list(WindowSplit(n_splits=5, history=10).split(np.zeros((30, 1))))


def test_windowsplit_long_frame_splits_each_series_by_its_time():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"id": np.repeat(["a", "b"], [60, 45]), "t": np.r_[np.arange(60), np.arange(45)],
                       "v": rng.normal(size=105)}).sample(frac=1, random_state=0).reset_index(drop=True)
    cv = WindowSplit(n_splits=2, history=3, id_col="id", time_col="t")
    for train, test in cv.split(df):
        for name, _g in df.groupby("id"):
            tr = df.loc[train][df.loc[train, "id"] == name]["t"]
            te = df.loc[test][df.loc[test, "id"] == name]["t"]
            assert len(tr) > 3 and len(te) > 3 and tr.max() < te.min()
    reg = WindowRegressor(LinearRegression(), timesteps=3, id_col="id", time_col="t", target_cols=["v"])
    search = GridSearchCV(reg, {"timesteps": [2, 3]}, cv=cv, scoring=window_scorer("neg_mean_absolute_error"))
    search.fit(df)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_timeseriessplit_and_pipeline_scorer():
    """The issue's pipeline: a scaler, the windowing regressor and scikit-learn's own TimeSeriesSplit."""
    X, y = _lagged(400)
    pipe = make_pipeline(StandardScaler(), WindowRegressor(Ridge(), timesteps=3))
    search = GridSearchCV(pipe, {"windowregressor__timesteps": [3, 8], "windowregressor__estimator__alpha": [0.1, 1]},
                          cv=TimeSeriesSplit(n_splits=3), scoring=window_scorer("r2"))
    search.fit(X[:, 1:], y)
    assert search.best_params_["windowregressor__timesteps"] == 8
    pred = search.predict(X[300:, 1:])
    assert pred.shape == (100 - 8,)
    np.testing.assert_allclose(search.best_estimator_[-1].align_y(X[300:, 1:], y[300:]), y[308:])
    with pytest.raises(sb.ParameterError, match="WindowRegressor"):
        window_scorer()(Ridge().fit(X, y), X, y)
    with pytest.raises(sb.ParameterError):
        window_scorer("no_such_metric")


def test_windowregressor_estimator_checks():
    """Every scikit-learn check passes except exactly the documented inapplicable ones."""
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    from statebatch.sklearn import INAPPLICABLE_REGRESSOR_CHECKS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(WindowRegressor(timesteps=2), on_fail=None)
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    assert failed == set(INAPPLICABLE_REGRESSOR_CHECKS), failed ^ set(INAPPLICABLE_REGRESSOR_CHECKS)
    assert sum(r["status"] == "passed" for r in results) > 30


def test_windowregressor_params_and_next_step_targets():
    X = np.arange(40.0).reshape(20, 2)
    reg = WindowRegressor(LinearRegression(), timesteps=4, target_cols=[1])
    assert clone(reg).get_params()["timesteps"] == 4
    reg.fit(X)
    np.testing.assert_array_equal(reg.align_y(X), X[4:, 1:])
    np.testing.assert_allclose(reg.predict(X), X[4:, 1:], atol=1e-4)  # float32 windows
    with pytest.raises(sb.ParameterError, match="horizon"):
        WindowRegressor(timesteps=2, horizon=0).fit(X)
    with pytest.raises(sb.ShapeError, match="no window"):  # 20 rows: a window of 20 has no next step
        WindowRegressor(timesteps=20).fit(X, X[:, 0])


def test_series_scaler_round_trips_by_id():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"id": np.repeat(["small", "big", "flat"], 30), "t": np.tile(np.arange(30), 3),
                       "v": np.r_[rng.normal(1, 0.1, 30), rng.normal(1000, 50, 30), np.full(30, 7.0)]})
    sc = SeriesScaler(id_col="id", time_col="t").fit(df)
    z = sc.transform(df)
    assert list(z.columns) == ["id", "t", "v"] and (z["t"] == df["t"]).all()
    for name in ("small", "big"):
        part = z.loc[z["id"] == name, "v"]
        assert abs(part.mean()) < 1e-9 and abs(part.std(ddof=0) - 1) < 1e-9
    assert (z.loc[z["id"] == "flat", "v"] == 0).all()  # constant series: scale 1, not a division by 0
    np.testing.assert_allclose(sc.inverse_transform(z)["v"], df["v"])
    # predictions in scaled units, in windows' order, back to original units by id
    reg = WindowRegressor(LinearRegression(), timesteps=3, id_col="id", time_col="t", target_cols=["v"]).fit(z)
    ids = reg.prediction_ids(z)
    assert list(dict.fromkeys(ids)) == ["small", "big", "flat"] and len(ids) == 3 * 27
    scaled_targets = reg.align_y(z)
    back = sc.inverse_transform_by_id(scaled_targets[:, 0], ids, "v")
    expected = np.concatenate([df.loc[df["id"] == n, "v"].to_numpy()[3:] for n in ("small", "big", "flat")])
    np.testing.assert_allclose(back, expected)
    with pytest.raises(sb.DataValueError, match="never saw"):
        sc.inverse_transform_by_id([1.0], ["new"], "v")
    with pytest.raises(sb.ParameterError):
        SeriesScaler(id_col="nope").fit(df)
    # usable in a pipeline in front of the windowing
    pipe = make_pipeline(SeriesScaler(id_col="id", time_col="t"),
                         WindowRegressor(Ridge(), timesteps=3, id_col="id", time_col="t", target_cols=["v"]))
    assert np.isfinite(pipe.fit(df).score(df))


def test_windowsplit_folds_arranged_into_stateful_lanes_do_not_leak():
    """The same folds, each part arranged into lanes for a stateful model: the row number travels as a
    feature, so the lanes themselves show which rows they read and target."""
    sizes = {"a": 90, "b": 70, "c": 55}
    df = pd.DataFrame({"id": np.repeat(list(sizes), list(sizes.values())),
                       "t": np.concatenate([np.arange(n) for n in sizes.values()])})
    df["row"] = np.arange(len(df), dtype=float)
    df = df.sample(frac=1, random_state=4).reset_index(drop=True)
    cv = WindowSplit(n_splits=3, history=6, gap=1, id_col="id", time_col="t")
    for train, test in cv.split(df):
        tr = sb.arrange_stateful(df.iloc[train], 6, 3, id_col="id", time_col="t", feature_cols=["row"],
                                 target_cols=["row"])
        te = sb.arrange_stateful(df.iloc[test], 6, 3, id_col="id", time_col="t", feature_cols=["row"],
                                 target_cols=["row"])
        w_tr, w_te = tr.sample_weight > 0, te.sample_weight > 0
        tr_inputs, tr_targets = set(tr.X[..., 0][w_tr].astype(int)), set(tr.y[..., 0][w_tr].astype(int))
        te_inputs, te_targets = set(te.X[..., 0][w_te].astype(int)), set(te.y[..., 0][w_te].astype(int))
        rows_train, rows_test = set(df["row"].iloc[train].astype(int)), set(df["row"].iloc[test].astype(int))
        assert tr_inputs | tr_targets <= rows_train and te_inputs | te_targets <= rows_test
        assert not (tr_inputs | tr_targets) & (te_inputs | te_targets)
        for name in sizes:  # per series, everything trained on comes before the test fold, gap included
            rows = df[df["id"] == name].set_index("row")["t"]
            t_tr = rows.loc[sorted(tr_targets & set(rows.index))]
            t_te = rows.loc[sorted(te_inputs & set(rows.index))]
            assert t_tr.max() + cv.gap < t_te.min()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 6), history=st.integers(0, 20), gap=st.integers(0, 5),
       test_size=st.one_of(st.none(), st.integers(1, 40)), max_train=st.one_of(st.none(), st.integers(1, 100)))
def test_windowsplit_invariants(n, k, history, gap, test_size, max_train):
    """Every fold: training rows end exactly `gap` rows before the test fold, whose first `history` rows
    are in no training part of that fold; the scored parts tile the last k * m rows; or a statebatch error."""
    cv = WindowSplit(n_splits=k, history=history, gap=gap, test_size=test_size, max_train_size=max_train)
    try:
        folds = list(cv.split(np.zeros((n, 1))))
    except sb.ParameterError:
        m = (n - history - gap) // (k + 1) if test_size is None else test_size
        # refused only when it cannot fit
        assert m < 1 or n - k * m - history - gap <= history or (max_train is not None and max_train <= history)
        return
    assert len(folds) == k == cv.get_n_splits()
    scored = []
    for train, test in folds:
        assert len(train) > 0 and np.all(np.diff(train) == 1) and np.all(np.diff(test) == 1)
        assert test[0] - train[-1] - 1 == gap  # exactly the gap, no more, no less
        assert len(train) > history and (max_train is None or len(train) <= max_train)
        scored.append(test[history:])
    assert np.array_equal(np.concatenate(scored), np.arange(n - len(np.concatenate(scored)), n))


def test_window_regressor_takes_the_input_options_together():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": np.repeat(["a", "b"], 30), "t": np.tile(np.arange(30), 2),
                       "v": rng.normal(size=60), "noise": rng.normal(size=60)})
    opts = sb.InputOptions(id_col="id", time_col="t", feature_cols=["v"])
    reg = WindowRegressor(LinearRegression(), timesteps=4, options=opts).fit(df)
    assert reg.n_features_in_ == 4 and list(reg.windower_.get_feature_names_out()) == ["v"]
    by_kw = WindowRegressor(LinearRegression(), timesteps=4, id_col="id", time_col="t").fit(df[["id", "t", "v"]])
    np.testing.assert_allclose(reg.predict(df), by_kw.predict(df[["id", "t", "v"]]))
    assert clone(reg).get_params()["options"] == opts
    with pytest.raises(sb.errors.ParameterError, match="given twice"):
        WindowRegressor(timesteps=4, time_col="id", options=opts).fit(df)
