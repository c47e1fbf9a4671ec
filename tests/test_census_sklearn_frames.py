"""Census of bad and edge inputs to the scikit-learn adapters, frame readers and the Dask path
(issues 21 and 22): each case gets a statebatch error (a ``ValueError``/``TypeError`` subclass) whose
message carries a fix, or a documented warning, or a correct result checked against an independent
reference; no foreign error, no silent wrong result."""

import warnings

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import get_scorer
from sklearn.model_selection import (GridSearchCV, TimeSeriesSplit, cross_val_predict, cross_val_score, cross_validate,
                                     learning_curve, validation_curve)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import statebatch as sb
from statebatch.dask import feature_stats, prepare
from statebatch.errors import (DataValueError, DTypeError, LengthMismatchError, OrderError, ParameterError, ShapeError,
                               StatebatchError, StatebatchWarning)
from statebatch.sklearn import (NotFittedError, SeriesScaler, StatefulTransformer, WindowRegressor, WindowSplit, WindowTransformer,
                                time_split, transform_xy, window_scorer)

RNG = np.random.default_rng(21)
X = np.cumsum(RNG.normal(size=(60, 2)), axis=0)
Y = X[:, 0] * 2.0 + 1.0
FX = pd.DataFrame(X, columns=["a", "b"])
YS = pd.Series(Y)
SHUFFLED = YS.sample(frac=1, random_state=0)
LONG = pd.DataFrame({"id": np.repeat([0, 1], 20), "t": np.tile(np.arange(20), 2), "v": np.arange(40.0)})
NAN_MID = Y.copy()
NAN_MID[30] = np.nan


def _wt():
    return WindowTransformer(3).fit(X)


def _reg(**kw):
    return WindowRegressor(timesteps=3, **kw)


def _dask(frame, n=2):
    return dd.from_pandas(frame, npartitions=n)


def _nested(*cells):
    return pd.DataFrame({"a": list(cells)})


BACKWARDS = pd.DataFrame({"a": np.arange(20.0)}, index=pd.date_range("2020-01-01", periods=20)[::-1])
PANEL = pd.DataFrame({"a": [pd.Series(np.arange(8.0)), pd.Series(np.arange(8.0) + 10)]})
MIXED = pd.DataFrame({"id": [1] * 6 + ["1"] * 6, "t": list(range(6)) * 2, "v": np.arange(12.0)})
BOOL_INT = pd.DataFrame({"id": [True] * 6 + [1] * 6, "v": np.arange(12.0)})
NAN_TARGET = pd.DataFrame({"id": [0] * 6, "v": np.arange(6.0), "y": [0, 1, np.nan, 3, 4, 5]})
TEXT = pd.DataFrame({"id": [0] * 6, "v": np.arange(6.0), "s": list("abcdef")})


def _mixed_unconverted():
    with dask.config.set({"dataframe.convert-string": False}):  # partitions keep Python objects
        frame = _dask(pd.DataFrame({"id": [1] * 6 + ["1"] * 6, "v": np.arange(12.0)})).map_partitions(lambda p: p)
        return prepare(frame, id_col="id")


# (name, call, expected statebatch error type)
ERRORS = [
    # time_split: small sizes, bad data
    ("time_split 3 rows: empty val and test", lambda: time_split(np.arange(3.0)), ParameterError),
    ("time_split 5 rows, val only empty", lambda: time_split(np.arange(5.0), val=0.1, test=0.3), ParameterError),
    ("time_split 1 row", lambda: time_split(np.arange(1.0)), ParameterError),
    ("time_split 0 rows", lambda: time_split(np.zeros(0)), DataValueError),
    ("time_split None", lambda: time_split(None), ParameterError),
    ("time_split scalar", lambda: time_split(5), ParameterError),
    ("time_split every series too short", lambda: time_split(pd.DataFrame({"id": [0, 0, 1], "v": [1.0, 2, 3]}),
                                                             id_col="id"), ParameterError),
    ("time_split short series with a gap", lambda: time_split(pd.DataFrame({"id": [0] * 20 + [1] * 5,
                                                                            "v": np.arange(25.0)}), id_col="id",
                                                              gap=2), ParameterError),
    ("time_split empty long frame", lambda: time_split(LONG.iloc[:0], id_col="id"), DataValueError),
    ("time_split mixed ids", lambda: time_split(LONG.assign(id=[1, "1"] * 20), id_col="id"), DTypeError),
    ("time_split duplicate times", lambda: time_split(LONG, time_col="t"), OrderError),
    ("time_split duplicate (id, time)", lambda: time_split(LONG.assign(t=0), id_col="id", time_col="t"), OrderError),
    ("time_split text times", lambda: time_split(LONG.assign(t="2020-01-01"), time_col="t"), DTypeError),
    ("time_split gap too big", lambda: time_split(np.zeros(10), gap=5), ParameterError),
    # y that does not belong to X's rows
    ("transform_xy y other labels", lambda: WindowTransformer(3).fit(FX).transform_xy(
        FX, pd.Series(Y, index=range(100, 160))), LengthMismatchError),
    ("transform_xy y duplicated labels", lambda: WindowTransformer(3).fit(FX).transform_xy(
        FX, pd.Series(Y, index=[0] * 60)), LengthMismatchError),
    ("transform_xy y shorter Series", lambda: WindowTransformer(3).fit(FX).transform_xy(FX, YS[:-1]),
     LengthMismatchError),
    ("transform_xy y None", lambda: _wt().transform_xy(X, None), ParameterError),
    ("transform_xy y scalar", lambda: _wt().transform_xy(X, 5.0), ShapeError),
    ("transform_xy y dict", lambda: _wt().transform_xy(X, {"a": 1}), ShapeError),
    ("transform_xy y one short", lambda: _wt().transform_xy(X, Y[:-1]), LengthMismatchError),
    ("transform_xy y names a column of an array", lambda: _wt().transform_xy(X, "a"), ParameterError),
    ("transform_xy y names a missing column", lambda: WindowTransformer(3).fit(FX).transform_xy(FX, "zz"),
     ParameterError),
    ("transform_xy y text", lambda: _wt().transform_xy(X, np.array(["a"] * 60)), DTypeError),
    ("transform_xy y objects", lambda: _wt().transform_xy(X, [None] * 60), DTypeError),
    ("transform_xy y NaN", lambda: _wt().transform_xy(X, NAN_MID), DataValueError),
    ("StatefulTransformer y one short", lambda: StatefulTransformer(3, 2).fit(X).transform_xy(X, Y[:-1]),
     LengthMismatchError),
    ("StatefulTransformer y other labels", lambda: StatefulTransformer(3, 2).fit(FX).transform_xy(
        FX, pd.Series(Y, index=range(1, 61))), LengthMismatchError),
    ("StatefulTransformer y scalar", lambda: StatefulTransformer(3, 2).fit(X).transform_xy(X, 3), ShapeError),
    ("StatefulTransformer y NaN", lambda: StatefulTransformer(3, 2).fit(X).transform_xy(X, NAN_MID), DataValueError),
    ("pipeline transform_xy y other labels", lambda: transform_xy(
        make_pipeline(StandardScaler(), WindowTransformer(3)).fit(FX), FX, pd.Series(Y, index=range(7, 67))),
     LengthMismatchError),
    ("WindowRegressor y other labels", lambda: _reg().fit(FX, pd.Series(Y, index=range(5, 65))), LengthMismatchError),
    ("WindowRegressor y one short", lambda: _reg().fit(X, Y[:-1]), LengthMismatchError),
    ("WindowRegressor y text", lambda: _reg().fit(X, np.array(["a"] * 60)), DTypeError),
    ("WindowRegressor y NaN", lambda: _reg().fit(X, NAN_MID), DataValueError),
    ("WindowRegressor align_y short y", lambda: _reg().fit(X, Y).align_y(X, Y[:5]), LengthMismatchError),
    ("WindowRegressor sample_weight per window", lambda: _reg().fit(X, Y, sample_weight=np.ones(57)),
     LengthMismatchError),
    ("WindowRegressor sample_weight text", lambda: _reg().fit(X, Y, sample_weight=np.array(["1"] * 60)),
     LengthMismatchError),
    ("WindowRegressor score sample_weight short", lambda: _reg().fit(X, Y).score(X, Y, sample_weight=np.ones(3)),
     LengthMismatchError),
    ("WindowSplit y shuffled", lambda: list(WindowSplit(2, history=3).split(FX, SHUFFLED)), LengthMismatchError),
    ("WindowSplit y one short", lambda: list(WindowSplit(2, history=3).split(X, Y[:-1])), LengthMismatchError),
    ("WindowSplit X None", lambda: list(WindowSplit(2, history=3).split(None)), ParameterError),
    ("WindowSplit missing ids", lambda: list(WindowSplit(2, history=2, id_col="id").split(
        LONG.assign(id=[0.0] * 20 + [np.nan] * 20))), DataValueError),
    ("WindowSplit mixed ids", lambda: list(WindowSplit(2, history=2, id_col="id").split(
        LONG.assign(id=[1, "1"] * 20))), DTypeError),
    ("WindowSplit text times", lambda: list(WindowSplit(2, history=2, id_col="id", time_col="t").split(
        LONG.assign(t="x"))), DTypeError),
    ("WindowSplit duplicate times", lambda: list(WindowSplit(2, history=2, id_col="id", time_col="t").split(
        LONG.assign(t=0))), OrderError),
    ("WindowSplit empty X", lambda: list(WindowSplit(2, history=2).split(np.zeros((0, 2)))), ParameterError),
    # one series whose time index is out of order or repeated (as make_windows refuses it)
    ("WindowTransformer time index decreasing", lambda: WindowTransformer(3).fit(BACKWARDS), OrderError),
    ("WindowRegressor time index decreasing", lambda: _reg().fit(BACKWARDS, BACKWARDS["a"]), OrderError),
    ("StatefulTransformer time index decreasing", lambda: StatefulTransformer(3, 2).fit(BACKWARDS), OrderError),
    ("WindowSplit time index decreasing", lambda: list(WindowSplit(2, history=3).split(BACKWARDS)), OrderError),
    ("WindowTransformer time index repeated", lambda: WindowTransformer(3).fit(
        BACKWARDS.set_axis([pd.Timestamp("2020")] * 20)), OrderError),
    ("WindowTransformer transform time index decreasing", lambda: WindowTransformer(3).fit(
        BACKWARDS.sort_index()).transform(BACKWARDS), OrderError),
    # scorers that compare windows with rows
    ("GridSearchCV with a plain scorer", lambda: GridSearchCV(
        _reg(), {"timesteps": [3, 5]}, scoring="neg_mean_absolute_error", cv=WindowSplit(2, history=6)).fit(X, Y),
     ParameterError),
    ("GridSearchCV pipeline, multimetric", lambda: GridSearchCV(
        make_pipeline(StandardScaler(), _reg()), {"windowregressor__timesteps": [3]},
        scoring={"plain": "r2", "ok": window_scorer("r2")}, refit="ok", cv=WindowSplit(2, history=6)).fit(X, Y),
     ParameterError),
    ("cross_val_score with a plain scorer", lambda: cross_val_score(_reg(), X, Y, cv=TimeSeriesSplit(3),
                                                                    scoring="r2"), ParameterError),
    ("cross_validate with a plain scorer", lambda: cross_validate(_reg(), X, Y, cv=TimeSeriesSplit(3),
                                                                  scoring=["neg_mean_squared_error"]), ParameterError),
    ("cross_val_predict", lambda: cross_val_predict(_reg(), X, Y, cv=3), ParameterError),
    ("learning_curve with a plain scorer", lambda: learning_curve(_reg(), X, Y, cv=TimeSeriesSplit(2), scoring="r2",
                                                                  train_sizes=[0.5, 1.0]), ParameterError),
    ("validation_curve with a plain scorer", lambda: validation_curve(_reg(), X, Y, param_name="timesteps",
                                                                      param_range=[3, 4], cv=TimeSeriesSplit(2),
                                                                      scoring="r2"), ParameterError),
    ("a plain scorer called directly", lambda: get_scorer("r2")(_reg().fit(X, Y), X, Y), ParameterError),
    # WindowRegressor parameters
    ("WindowRegressor estimator not an estimator", lambda: _reg(estimator=5).fit(X, Y), ParameterError),
    ("WindowRegressor estimator class", lambda: _reg(estimator=Ridge).fit(X, Y), ParameterError),
    ("WindowRegressor target_cols bools", lambda: _reg(target_cols=[True]).fit(FX), ParameterError),
    ("WindowRegressor target_cols unknown", lambda: _reg(target_cols=["zz"]).fit(FX), ParameterError),
    ("WindowRegressor flatten text", lambda: _reg(flatten="no").fit(X, Y), ParameterError),
    ("WindowRegressor too few rows to score", lambda: _reg().fit(X, Y).score(X[:3], Y[:3]), ShapeError),
    # X that scikit-learn's own checks reject, as statebatch errors of the right kind
    ("WindowTransformer X text", lambda: WindowTransformer(3).fit(np.array([["a"], ["b"]])), DTypeError),
    ("WindowTransformer X NaN", lambda: WindowTransformer(3).fit(np.r_[np.nan, Y[1:]][:, None]), DataValueError),
    ("WindowTransformer X empty", lambda: WindowTransformer(3).fit(np.zeros((0, 2))), DataValueError),
    ("WindowTransformer X 3-D", lambda: WindowTransformer(3).fit(np.zeros((4, 2, 2))), ShapeError),
    ("WindowTransformer other feature count", lambda: _wt().transform(X[:, :1]), ShapeError),
    ("long frame mixed ids", lambda: WindowTransformer(3, id_col="id").fit(
        LONG.assign(id=[1, "1"] * 20)).transform(LONG.assign(id=[1, "1"] * 20)), DTypeError),
    ("long frame ids 1 and True", lambda: sb.make_windows(LONG.assign(id=[1] * 20 + [True] * 20), 3, id_col="id"),
     DTypeError),
    ("long frame duplicate times", lambda: sb.make_windows(LONG.assign(t=0), 3, id_col="id", time_col="t"),
     OrderError),
    # SeriesScaler
    ("SeriesScaler mixed ids", lambda: SeriesScaler("id").fit(LONG.assign(id=[1, "1"] * 20)), DTypeError),
    ("SeriesScaler empty frame", lambda: SeriesScaler("id").fit(LONG.iloc[:0]), DataValueError),
    ("SeriesScaler ids None", lambda: SeriesScaler("id").fit(LONG).inverse_transform_by_id(np.zeros(3), None),
     ParameterError),
    ("SeriesScaler text values", lambda: SeriesScaler("id").fit(LONG).inverse_transform_by_id(np.array(["a"]), [0],
                                                                                              "v"), DTypeError),
    ("SeriesScaler with_mean text", lambda: SeriesScaler("id", with_mean="no").fit(LONG), ParameterError),
    ("transform_xy of an unfitted pipeline", lambda: transform_xy(make_pipeline(StandardScaler(), WindowTransformer(3)),
                                                                  X, Y), NotFittedError),
    ("window_scorer on an unfitted pipeline", lambda: window_scorer("r2")(make_pipeline(StandardScaler(), _reg()), X, Y),
     NotFittedError),
    ("time_split of a list of series", lambda: time_split([np.zeros(10), np.zeros(5)]), ParameterError),
    # sktime nested cells
    ("nested duplicated time points", lambda: sb.make_windows(_nested(pd.Series([1.0, 2, 3], index=[0, 0, 1])), 2),
     OrderError),
    ("nested missing time point", lambda: sb.make_windows(_nested(pd.Series([1.0, 2, 3], index=[0.0, np.nan, 1])), 2),
     DataValueError),
    ("nested variables with other time points", lambda: sb.make_windows(pd.DataFrame(
        {"a": [pd.Series([1.0, 2, 3])], "b": [pd.Series([1.0, 2, 3], index=[5, 6, 7])]}), 2), ShapeError),
    ("nested text cell", lambda: sb.make_windows(_nested(pd.Series(["x", "y", "z"])), 2), DTypeError),
    ("nested empty cell", lambda: sb.make_windows(_nested(pd.Series([], dtype=float)), 2), DataValueError),
    ("nested NaN", lambda: sb.make_windows(_nested(pd.Series([1.0, np.nan, 3])), 2), DataValueError),
    ("nested panel to a transformer", lambda: WindowTransformer(2).fit(PANEL), ParameterError),
    ("nested panel to a regressor", lambda: _reg().fit(PANEL), ParameterError),
    ("nested panel to time_split", lambda: time_split(PANEL), ParameterError),
    ("nested panel to WindowSplit", lambda: list(WindowSplit(2, history=1).split(PANEL)), ParameterError),
    # ids of mixed kinds on the pandas path
    ("ids bytes and text", lambda: sb.make_windows(LONG.assign(id=[b"a"] * 20 + ["a"] * 20), 3, id_col="id"),
     DTypeError),
    ("categorical ids 1 and '1'", lambda: sb.make_windows(LONG.assign(id=pd.Categorical([1, "1"] * 20)), 3,
                                                          id_col="id"), DTypeError),
    ("ids tuple and number", lambda: sb.make_windows(LONG.assign(id=[(0, 1)] * 20 + [1] * 20), 3, id_col="id"),
     DTypeError),
    # Dask
    ("dask ids 1 and '1'", lambda: prepare(_dask(MIXED), id_col="id", time_col="t"), DTypeError),
    ("dask ids True and 1", lambda: prepare(_dask(BOOL_INT, 1), id_col="id"), DTypeError),
    ("dask mixed ids, no string conversion", _mixed_unconverted, DTypeError),
    ("dask missing ids", lambda: prepare(_dask(pd.DataFrame({"id": [0, np.nan, 1], "v": [1.0, 2, 3]}), 1),
                                         id_col="id"), DataValueError),
    ("dask NaN in a target column", lambda: prepare(_dask(NAN_TARGET, 1), id_col="id", feature_cols=["v"],
                                                    target_cols=["y"]), DataValueError),
    ("dask text time column", lambda: prepare(_dask(pd.DataFrame({"id": [0] * 3, "t": ["1/12/2020", "1/2/2020",
                                                                                        "1/3/2020"], "v": [1.0, 2, 3]}),
                                                    1), id_col="id", time_col="t"), DTypeError),
    ("dask missing time stamps", lambda: prepare(_dask(pd.DataFrame({"id": [0] * 3, "t": [1, np.nan, 2],
                                                                     "v": [1.0, 2, 3]}), 1), id_col="id", time_col="t"),
     DataValueError),
    ("dask feature_cols as a string", lambda: prepare(_dask(NAN_TARGET.fillna(0), 1), id_col="id", feature_cols="v"),
     ParameterError),
    ("dask target_cols as a string", lambda: prepare(_dask(NAN_TARGET.fillna(0), 1), id_col="id", target_cols="y"),
     ParameterError),
    ("dask empty feature_cols", lambda: prepare(_dask(NAN_TARGET.fillna(0), 1), id_col="id", feature_cols=[]),
     ParameterError),
    ("dask id column as a feature", lambda: prepare(_dask(NAN_TARGET.fillna(0), 1), id_col="id",
                                                    feature_cols=["id", "v"]), ParameterError),
    ("dask text dtype", lambda: prepare(_dask(NAN_TARGET.fillna(0), 1), id_col="id", dtype="U3"), ParameterError),
    ("dask allow_nan text", lambda: prepare(_dask(NAN_TARGET.fillna(0), 1), id_col="id",
                                            allow_nan="no"), ParameterError),
    ("dask prepare None", lambda: prepare(None), ParameterError),
    ("dask id_col as a list", lambda: prepare(_dask(TEXT, 1), id_col=["id"]), ParameterError),
    ("time_split time_col as a list", lambda: time_split(LONG, time_col=["t"]), ParameterError),
    ("WindowSplit id_col as a list", lambda: list(WindowSplit(2, history=2, id_col=["id"]).split(LONG)),
     ParameterError),
    ("WindowTransformer id_col not a column", lambda: WindowTransformer(3, id_col=5).fit(LONG), ParameterError),
    ("dask frame without id_col, missing column", lambda: prepare(_dask(TEXT, 1), feature_cols=["zz"]),
     ParameterError),
    ("dask prepare numpy", lambda: prepare(np.zeros(3)), ParameterError),
    ("dask text array", lambda: prepare(da.from_array(np.array(["a", "b"]))), DTypeError),
    ("feature_stats text column", lambda: feature_stats(_dask(TEXT, 1), id_col="id"), DTypeError),
    ("feature_stats missing column", lambda: feature_stats(_dask(TEXT, 1), feature_cols=["zz"]), ParameterError),
    ("feature_stats pandas frame", lambda: feature_stats(TEXT), ParameterError),
    ("feature_stats 3-D array", lambda: feature_stats(da.zeros((4, 2, 2))), ParameterError),
    ("feature_stats empty array", lambda: feature_stats(da.zeros((0, 2))), DataValueError),
    ("feature_stats text array", lambda: feature_stats(da.from_array(np.array(["a", "b"]))), DTypeError),
    ("feature_stats all-NaN column", lambda: feature_stats(_dask(NAN_TARGET.assign(y=np.nan), 1), id_col="id"),
     DataValueError),
]


@pytest.mark.parametrize("name,call,expected", ERRORS, ids=[c[0] for c in ERRORS])
def test_refused_with_a_fix(name, call, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatebatchWarning)  # some cases warn on the way (left-out steps)
        with pytest.raises(expected) as info:
            call()
    assert isinstance(info.value, StatebatchError) and isinstance(info.value, (ValueError, TypeError))
    assert "Fix:" in str(info.value) and info.value.fix


def test_plain_scorer_error_names_window_scorer_and_keeps_nan_out():
    search = GridSearchCV(_reg(), {"timesteps": [3, 5]}, scoring="neg_mean_absolute_error",
                          cv=WindowSplit(2, history=6))
    with pytest.raises(ParameterError, match=r"window_scorer\('neg_mean_absolute_error'\)"):
        search.fit(X, Y)
    # the fix works: finite scores, and the best one is the lowest mean absolute error of the two
    fixed = GridSearchCV(_reg(), {"timesteps": [3, 5]}, scoring=window_scorer("neg_mean_absolute_error"),
                         cv=WindowSplit(2, history=6)).fit(X, Y)
    scores = fixed.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and (scores < 0).all()
    # window scorers inside a multimetric dict are allowed
    both = cross_validate(_reg(), X, Y, cv=TimeSeriesSplit(3),
                          scoring={"r2": window_scorer("r2"), "mae": window_scorer("neg_mean_absolute_error")})
    assert np.isfinite(both["test_r2"]).all() and (both["test_mae"] < 0).all()
    # scoring left out uses WindowRegressor.score (R^2): allowed
    assert np.isfinite(cross_val_score(_reg(), X, Y, cv=TimeSeriesSplit(3))).all()


def test_shuffled_y_is_paired_by_label_everywhere():
    """A y Series in another row order gives exactly what the aligned y gives (it paired by position)."""
    ref = _reg().fit(FX, YS)
    got = _reg().fit(FX, SHUFFLED)
    np.testing.assert_array_equal(got.estimator_.coef_, ref.estimator_.coef_)
    assert got.score(FX, SHUFFLED) == ref.score(FX, YS) > 0.5
    # what pairing by position gave (the bug): a much worse fit
    assert _reg().fit(X, SHUFFLED.to_numpy()).score(X, Y) < ref.score(FX, YS) - 0.3
    for make in (lambda: WindowTransformer(3).fit(FX), lambda: StatefulTransformer(3, 2).fit(FX)):
        a, b = make().transform_xy(FX, YS), make().transform_xy(FX, SHUFFLED)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    pipe = make_pipeline(StandardScaler(), WindowTransformer(3)).fit(FX)
    np.testing.assert_array_equal(transform_xy(pipe, FX, SHUFFLED)[1], transform_xy(pipe, FX, YS)[1])
    # target of the window ending at row t is y[t + 1], read independently of the code
    np.testing.assert_allclose(WindowTransformer(3).fit(FX).transform_xy(FX, SHUFFLED)[1].ravel(), Y[3:], rtol=1e-6)
    # a long frame: the target column is matched by label too
    long_y = LONG["v"] * 10
    a = WindowTransformer(3, id_col="id", time_col="t").fit(LONG)
    np.testing.assert_array_equal(a.transform_xy(LONG, long_y.sample(frac=1, random_state=1))[1],
                                  a.transform_xy(LONG, long_y)[1])


def test_shuffled_y_without_an_index_on_x_warns():
    """X as an array (a scaler's output) carries no index: a shuffled y index is announced, not guessed."""
    with pytest.warns(StatebatchWarning, match="paired by"):
        _reg().fit(X, SHUFFLED)
    with pytest.warns(StatebatchWarning, match="paired by"):
        make_pipeline(StandardScaler(), _reg()).fit(FX, SHUFFLED)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatebatchWarning)
        _reg().fit(X, YS)  # an increasing index: no warning


def test_sample_weight_is_per_row_like_y():
    w = np.ones(60)
    w[:30] = 0.0  # rows 0..29 do not count: windows whose target row is below 30
    reg = _reg().fit(X, Y, sample_weight=w)
    ref = Ridge().fit(*(lambda Xw, yw: (Xw.reshape(len(Xw), -1)[27:], yw[27:]))(
        *WindowTransformer(3).fit(X).transform_xy(X, Y)))
    np.testing.assert_allclose(reg.estimator_.coef_, ref.coef_, rtol=1e-4, atol=1e-5)  # float32 windows
    assert np.abs(_reg().fit(X, Y).estimator_.coef_ - ref.coef_).max() > 1e-2  # the weights matter here
    # a weight Series in another row order is paired by label, like y
    shuffled_w = pd.Series(w).sample(frac=1, random_state=3)
    np.testing.assert_array_equal(_reg().fit(FX, YS, sample_weight=shuffled_w).estimator_.coef_,
                                  _reg().fit(FX, YS, sample_weight=pd.Series(w)).estimator_.coef_)


@pytest.mark.parametrize("n,parts", [(4, [2, 1, 1]), (7, [5, 1, 1]), (20, [14, 3, 3])])
def test_time_split_small_sizes_give_every_part_a_row(n, parts):
    tr, va, te, report = time_split(np.arange(float(n)))
    assert [len(tr), len(va), len(te)] == parts
    assert report == {"rows_left_out_by_gap": 0, "series_without_val": [], "series_without_test": []}
    np.testing.assert_array_equal(np.concatenate([tr, va, te]), np.arange(float(n)))  # in time order


def test_time_split_reports_series_that_train_only():
    frame = pd.DataFrame({"id": ["long"] * 20 + ["one"] + ["two"] * 2, "v": np.arange(23.0)})
    with pytest.warns(StatebatchWarning, match="too short"):
        tr, va, te, report = time_split(frame, id_col="id")
    assert report["series_without_val"] == ["one", "two"] and report["series_without_test"] == ["one", "two"]
    assert set(tr["id"]) == {"long", "one", "two"} and set(va["id"]) == set(te["id"]) == {"long"}
    assert len(tr) + len(va) + len(te) == 23
    # val=0 asks for no validation part: nothing to report for it
    with pytest.warns(StatebatchWarning):
        report = time_split(frame, id_col="id", val=0.0)[3]
    assert report["series_without_val"] == []


@pytest.mark.parametrize("index", [[4, 3, 2, 1, 0], [2, 0, 4, 1, 3],
                                   list(pd.date_range("2020-01-01", periods=5)[::-1])])
def test_nested_cell_is_read_in_time_order(index):
    values = np.arange(5.0) * 10
    cell = pd.Series(values, index=index)
    got = sb.make_windows(_nested(cell, pd.Series(values)), 2, targets="next")
    sorted_values = cell.sort_index().to_numpy()  # the reference: pandas' own sort
    np.testing.assert_array_equal(got.X[0, :, 0], sorted_values[:2])
    # the same as a long frame sorted by its time column
    long = pd.DataFrame({"id": 0, "t": np.argsort(np.argsort(index)), "v": values})
    ref = sb.make_windows(long, 2, id_col="id", time_col="t", targets="next")
    np.testing.assert_array_equal(got.X[: ref.n_windows if hasattr(ref, "n_windows") else len(ref.X)], ref.X)


def test_nested_variables_with_the_same_time_points_in_other_orders_are_paired_by_time():
    a = pd.Series([1.0, 2, 3], index=[0, 1, 2])
    b = pd.Series([30.0, 20, 10], index=[2, 1, 0])
    got = sb.make_windows(pd.DataFrame({"a": [a], "b": [b]}), 3)
    np.testing.assert_array_equal(got.X[0], [[1, 10], [2, 20], [3, 30]])


def test_dask_targets_with_nan_allowed_on_request_and_ids_of_one_kind_kept():
    stored = prepare(_dask(NAN_TARGET, 1), id_col="id", feature_cols=["v"], target_cols=["y"], allow_nan=True)
    assert list(stored.lengths) == [6]
    frame = pd.DataFrame({"id": ["1", "2"] * 6, "v": np.arange(12.0)})  # strings only: two series, as pandas gives
    ids = prepare(_dask(frame), id_col="id").ids
    assert sorted(ids) == sorted(sb.make_windows(frame, 2, id_col="id").series_ids) == ["1", "2"]


@pytest.mark.parametrize("ids", [[(0, 1)] * 20 + [(0, 2)] * 20, ["a"] * 20 + [None] * 0 + ["b"] * 20,
                                 [1] * 20 + [2.5] * 20, [True] * 20 + [False] * 20])
def test_ids_of_one_kind_pass(ids):
    got = sb.make_windows(LONG.assign(id=pd.Series(ids, dtype=object)), 3, id_col="id")
    assert len(got.series_ids) == 2 and len(got.X) == 2 * (20 - 3 + 1)


@pytest.mark.parametrize("dtype", [None, "string", object])
def test_text_labels_as_index_are_read_in_stored_order(dtype):
    """A text index carries no time order (it used to leak numpy's TypeError for pandas' string dtype)."""
    index = pd.Index(["c", "b", "a"], dtype=dtype)
    got = sb.make_windows(pd.Series([1.0, 2, 3], index=index), 2, targets="next")
    np.testing.assert_array_equal(got.X[:, :, 0], [[1, 2]])
    cell = sb.make_windows(_nested(pd.Series([1.0, 2, 3], index=index)), 3)
    np.testing.assert_array_equal(cell.X.ravel(), [1, 2, 3])
    assert [len(p) for p in time_split(pd.DataFrame({"v": np.arange(20.0)}, index=[str(i) for i in range(20)]))[:3]] \
        == [14, 3, 3]


def test_nested_panel_conversion_in_the_fix_works():
    with pytest.raises(ParameterError) as info:
        _reg().fit(PANEL)
    assert "pd.concat" in info.value.fix
    long = pd.concat({i: pd.DataFrame(row.to_dict()) for i, row in PANEL.iterrows()}, names=["id", "t"]).reset_index()
    reg = _reg(id_col="id", time_col="t").fit(long)
    assert reg.predict(long).shape == (2 * (8 - 3),)


def test_dask_targets_given_to_make_windows_follow_its_allow_nan():
    """prepare refuses NaN targets (allow_nan); a Dask frame given to make_windows keeps its allow_nan."""
    frame = _dask(NAN_TARGET, 1)
    kw = dict(id_col="id", feature_cols=["v"], target_cols=["y"], targets="aligned")
    with pytest.raises(DataValueError, match="NaN"):
        sb.make_windows(frame, 2, **kw).y  # noqa: B018
    got = sb.make_windows(frame, 2, allow_nan=True, **kw)
    # "aligned": window i's target is y[i] (Keras' convention), the same as the pandas path gives
    np.testing.assert_array_equal(got.y.ravel(), NAN_TARGET["y"].to_numpy()[:5])
    np.testing.assert_array_equal(got.y, sb.make_windows(NAN_TARGET, 2, allow_nan=True, **kw).y)


def test_series_scaler_takes_one_column_name():
    long = pd.DataFrame({"id": [0] * 10 + [1] * 10, "val": np.r_[np.arange(10.0), np.arange(10.0) * 100]})
    out = SeriesScaler("id", columns="val").fit_transform(long)
    np.testing.assert_allclose(out["val"].to_numpy()[:10], out["val"].to_numpy()[10:])  # each series by itself
    np.testing.assert_allclose(out["val"].to_numpy()[:10], (np.arange(10) - 4.5) / np.arange(10.0).std())


def test_no_pandas_warning_from_reading_time_stamps_and_unhashable_ids_refused():
    frame = pd.DataFrame({"id": ["a"] * 5, "t": pd.date_range("2020-01-01", periods=5)[::-1], "v": np.arange(5.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' infer_freq notice (Pandas4Warning) used to reach the user
        got = sb.make_windows(frame, 2, id_col="id", time_col="t", targets="next")
    np.testing.assert_array_equal(got.X[0, :, 0], [4.0, 3.0])  # sorted by time: the last rows come first
    with pytest.raises(DTypeError, match="cannot name a series") as info:
        sb.make_windows(pd.DataFrame({"id": [{"a": 1}] * 3, "v": [1.0, 2, 3]}), 2, id_col="id")
    assert info.value.fix
