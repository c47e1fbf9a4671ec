"""polars (long and wide), pyarrow and sktime's nested panels give the same windows as pandas."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import statebatch as sb
from statebatch.sources.frames import to_pandas_or_numpy
from statebatch.sklearn import SeriesScaler, StatefulTransformer, WindowSplit, WindowTransformer, time_split


def _long():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": np.repeat(["a", "b", "c"], [30, 22, 17]), "t": np.r_[np.arange(30), np.arange(22),
                       np.arange(17)], "v": rng.normal(size=69), "w": rng.normal(size=69)})
    return df.sample(frac=1, random_state=3).reset_index(drop=True)  # rows out of order: time_col sorts


def _wide():
    rng = np.random.default_rng(1)
    return pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})


def _pl():
    """polars, imported in the tests that use it (not at collection, so that the backend-only runs in
    venvs without polars still collect this module); without polars these tests fail, never skip."""
    import polars

    return polars


FORMATS = {"polars": lambda df: _pl().from_pandas(df), "pyarrow": lambda df: pa.Table.from_pandas(df, preserve_index=False)}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_long_and_wide_frames_give_the_pandas_windows(fmt):
    conv = FORMATS[fmt]
    long, wide = _long(), _wide()
    ref = sb.make_windows(long, 4, targets="next", id_col="id", time_col="t", target_cols=["v"])
    got = sb.make_windows(conv(long), 4, targets="next", id_col="id", time_col="t", target_cols=["v"])
    np.testing.assert_array_equal(got.X, ref.X)
    np.testing.assert_array_equal(got.y, ref.y)
    assert got.series_ids == ref.series_ids and sorted(got.series_ids) == ["a", "b", "c"]
    assert len(got.X) == 26 + 18 + 13
    np.testing.assert_array_equal(sb.make_windows(conv(wide), 5).X, sb.make_windows(wide, 5).X)
    a_ref = sb.arrange_stateful(long, 5, 2, id_col="id", time_col="t")
    a_got = sb.arrange_stateful(conv(long), 5, 2, id_col="id", time_col="t")
    np.testing.assert_array_equal(a_got.X, a_ref.X)
    np.testing.assert_array_equal(a_got.y, a_ref.y)
    # scikit-learn side: transformers, the splitter, the scaler and time_split
    wt = WindowTransformer(3, id_col="id", time_col="t")
    np.testing.assert_array_equal(wt.fit(conv(long)).transform_xy(conv(long), "v")[1],
                                  wt.fit(long).transform_xy(long, "v")[1])
    np.testing.assert_array_equal(WindowTransformer(3).fit(conv(wide)).transform(conv(wide)),
                                  WindowTransformer(3).fit(wide).transform(wide))
    st = StatefulTransformer(4, 2, id_col="id", time_col="t")
    np.testing.assert_array_equal(st.fit(conv(long)).transform(conv(long)), st.fit(long).transform(long))
    cv = WindowSplit(n_splits=2, history=3, id_col="id", time_col="t")
    for (tr1, te1), (tr2, te2) in zip(cv.split(conv(long)), cv.split(long)):
        np.testing.assert_array_equal(tr1, tr2)
        np.testing.assert_array_equal(te1, te2)
    pd.testing.assert_frame_equal(SeriesScaler(id_col="id", time_col="t").fit_transform(conv(long)),
                                  SeriesScaler(id_col="id", time_col="t").fit_transform(long))
    assert [len(p) for p in time_split(conv(wide))[:3]] == [len(p) for p in time_split(wide)[:3]]


def test_series_and_arrays_of_polars_and_pyarrow():
    x = np.arange(20.0)
    ref = sb.make_windows(x, 3).X
    np.testing.assert_array_equal(sb.make_windows(_pl().Series("x", x), 3).X, ref)
    np.testing.assert_array_equal(sb.make_windows(pa.array(x), 3).X, ref)
    np.testing.assert_array_equal(sb.make_windows(pa.chunked_array([x[:7], x[7:]]), 3).X, ref)


def test_sktime_nested_panel_is_a_list_of_series():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(12, 2)), rng.normal(size=(9, 2))
    nested = pd.DataFrame({"dim_0": [pd.Series(a[:, 0]), pd.Series(b[:, 0])],
                           "dim_1": [pd.Series(a[:, 1]), pd.Series(b[:, 1])]})
    got = sb.make_windows(nested, 4, targets="next")
    ref = sb.make_windows([a, b], 4, targets="next")
    np.testing.assert_array_equal(got.X, ref.X)
    np.testing.assert_array_equal(got.y, ref.y)
    bad = pd.DataFrame({"dim_0": [pd.Series(a[:, 0]), pd.Series(b[:, 0])],
                        "dim_1": [pd.Series(a[:, 1]), pd.Series(b[:4, 1])]})
    with pytest.raises(sb.DTypeError, match="different lengths"):
        sb.make_windows(bad, 4)


def test_refusals_name_the_fix():
    with pytest.raises(sb.ParameterError, match="collect"):
        sb.make_windows(_pl().from_pandas(_wide()).lazy(), 3)
    idx = pd.MultiIndex.from_product([["a", "b"], range(6)], names=["inst", "t"])
    with pytest.raises(sb.ShapeError, match="reset_index"):  # sktime pd-multiindex: not guessed
        sb.make_windows(pd.DataFrame({"v": np.arange(12.0)}, index=idx), 2)
    plain = pd.DataFrame({"v": np.arange(5.0)})
    assert to_pandas_or_numpy(plain) is plain  # pandas passes through untouched


def test_polars_and_pyarrow_are_imported_only_when_given():
    # pandas itself may load pyarrow (its string dtype), so pyarrow is checked before pandas is used
    code = ("import sys, numpy as np, statebatch as sb; sb.make_windows(np.zeros((9, 1)), 3); "
            "assert 'pyarrow' not in sys.modules and 'polars' not in sys.modules; "
            "import pandas as pd; sb.make_windows(pd.DataFrame({'v': range(9)}), 3); "
            "assert 'polars' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trading_days_with_a_missing_weekday_name_that_day_not_the_weekends():
    # newcomer trial (EuStockMarkets with 3 trading days removed): pandas infers no frequency then, and
    # every weekend was reported as a hole (371 of them); gaps="split" cut the series into weeks
    import pandas as pd

    from statebatch.sources.timeindex import find_gaps

    days = pd.bdate_range("1991-07-01", periods=300)
    holes, step = find_gaps(days.delete([20, 100, 101]))
    assert holes.tolist() == [20, 99] and step == "B"
    assert find_gaps(days)[0].size == 0
    frame = pd.DataFrame({"x": np.arange(297.0)}, index=days.delete([20, 100, 101]))
    with pytest.raises(sb.DataValueError, match="2 hole"):
        sb.make_windows(frame, 10)
    with pytest.warns(sb.StatebatchWarning):
        w = sb.make_windows(frame, 10, gaps="split")
    assert len(set(w.series.tolist())) == 3  # three pieces


def test_a_period_time_column_is_refused_with_to_timestamp_not_as_text():
    # pandas Periods sort correctly; the text advice ("1/12/2020" before "1/2/2020", pd.to_datetime) misled
    df = pd.DataFrame({"id": "a", "t": pd.period_range("2000-01", periods=6, freq="M"), "y": np.arange(6.0)})
    with pytest.raises(sb.DTypeError, match="period") as info:
        sb.make_windows(df, 2, id_col="id", time_col="t", target_cols=["y"])
    assert "to_timestamp()" in info.value.fix and "sort as text" not in str(info.value)
