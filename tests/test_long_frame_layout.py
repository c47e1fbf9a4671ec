"""A long frame read as series gives the same series whatever its row layout: already grouped by series
and in time order (read by comparing neighbouring rows, no sort) or in any other order (sorted). The
expected series come from pandas (first appearance of each id, each series sorted by time)."""

from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch.errors import DataValueError, OrderError
from statebatch.sources import pandas_frames
from statebatch.sources.series import as_series

ID_KINDS = {
    "int": lambda k: np.int64(10 * k - 7),
    "float": lambda k: np.float64(k / 4),
    "str": lambda k: f"s{k}",
    "datetime": lambda k: np.datetime64("2020-01-01") + np.timedelta64(k, "D"),
}


@st.composite
def long_frames(draw):
    kind = draw(st.sampled_from(sorted(ID_KINDS)))
    lengths = draw(st.lists(st.integers(1, 7), min_size=1, max_size=5))
    ids = [ID_KINDS[kind](k) for k in draw(st.permutations(range(len(lengths))))]
    rows = []
    for i, n in zip(ids, lengths):
        times = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n, unique=not draw(st.booleans())))
        rows += [(i, t) for t in sorted(times)]
    df = pd.DataFrame(rows, columns=["id", "t"])
    if kind == "str":  # text as pandas stores it by default, in its other string dtypes, or as objects
        df["id"] = df["id"].astype(draw(st.sampled_from(["str", "string[pyarrow]", "string[python]", object])))
    df["v"] = np.arange(len(df), dtype=np.float64) * 1.5
    layout = draw(st.sampled_from(["grouped", "shuffled", "reversed"]))
    if layout == "shuffled":
        df = df.sample(frac=1, random_state=draw(st.integers(0, 99))).reset_index(drop=True)
    elif layout == "reversed":  # grouped, but each series in decreasing time
        df = df.iloc[::-1].reset_index(drop=True)
    return df


def _expected(df):
    """The series pandas gives: ids in order of first appearance, each series' rows sorted by time."""
    ids = list(df["id"].drop_duplicates())
    return ids, [df[df["id"] == i].sort_values("t", kind="stable")["v"].to_numpy() for i in ids]


@settings(max_examples=150, deadline=None)
@given(long_frames(), st.sampled_from([1, 2, 3, 1 << 16]))
def test_any_row_layout_gives_the_pandas_series(df, chunk):
    duplicated = df.duplicated(["id", "t"]).any()
    sort = mock.Mock(wraps=pandas_frames._series_order)
    with mock.patch.object(pandas_frames, "_CHUNK", chunk), \
            mock.patch.object(pandas_frames, "_series_order", sort):  # a few rows a chunk: the chunk edges are crossed
        if duplicated:
            with pytest.raises(OrderError, match="duplicate"):
                as_series(df, id_col="id", time_col="t", feature_cols=["v"])
            return
        ss = as_series(df, id_col="id", time_col="t", feature_cols=["v"])
    ids, series = _expected(df)
    assert [type(a) for a in ss.ids] == [type(b) for b in ids] and ss.ids == ids
    assert len(ss.offsets) == len(ids) + 1
    for k, want in enumerate(series):
        np.testing.assert_array_equal(ss.series(k)[:, 0], want)
    rows = list(df["id"])
    runs = 1 + sum(a != b for a, b in zip(rows[1:], rows[:-1]))  # runs of rows of one id
    in_order = runs == len(ids) and df.groupby("id")["t"].apply(lambda t: t.is_monotonic_increasing).all()
    assert (ss.row_order is None) == in_order  # grouped and in time order: the rows are not reordered
    assert sort.called != in_order  # ... nor sorted (no lexsort, no per-row codes)


@pytest.mark.parametrize("layout", ["grouped", "shuffled"])
@pytest.mark.parametrize("ids", [pd.Series([1.0, 1.0, np.nan, np.nan]), pd.Series(["a", "a", None, None]),
                                 pd.Series(["a", "a", None, None], dtype="string[pyarrow]"),
                                 pd.Series(["a", "a", None, None], dtype="string[python]"),
                                 pd.Series(["a", "a", None, None], dtype=object)])
def test_missing_ids_are_refused_in_any_layout(layout, ids):
    df = pd.DataFrame({"id": ids, "t": [0, 1, 0, 1], "v": [1.0, 2.0, 3.0, 4.0]})
    if layout == "shuffled":
        df = df.iloc[[2, 0, 3, 1]]
    with pytest.raises(DataValueError, match="missing series ids"):
        as_series(df, id_col="id", time_col="t", feature_cols=["v"])


def test_a_categorical_static_column_is_read_as_codes_and_named_by_its_labels():
    df = pd.DataFrame({"id": np.repeat([3, 1, 2], 4), "t": np.tile(np.arange(4), 3), "y": np.arange(12.0)})
    df["store"] = pd.Categorical(np.repeat(["north", "east", "north"], 4), categories=["south", "north", "east"])
    w = sb.make_windows(df, 2, id_col="id", time_col="t", target_cols=["y"], static_cols=["store"])
    assert w.forecast.static_vocab == {"store": ["south", "north", "east"]}
    np.testing.assert_array_equal(w.forecast.static, [[1], [2], [1]])  # series 3, 1, 2: north, east, north
    assert w.forecast.static.dtype == np.int64
    bad = df.copy()
    bad.loc[6, "store"] = "south"  # series 1, step 2
    with pytest.raises(DataValueError, match="varies within series 1 \\(step 2 holds 'south', its first step 'east'\\)"):
        sb.make_windows(bad, 2, id_col="id", time_col="t", target_cols=["y"], static_cols=["store"])
    bad.loc[4:7, "store"] = np.nan
    with pytest.raises(DataValueError, match="missing for series 1"):
        sb.make_windows(bad, 2, id_col="id", time_col="t", target_cols=["y"], static_cols=["store"])
    bad.loc[7, "store"] = "east"  # missing, then a category: it varies
    with pytest.raises(DataValueError, match="step 3 holds 'east', its first step nan"):
        sb.make_windows(bad, 2, id_col="id", time_col="t", target_cols=["y"], static_cols=["store"])


@st.composite
def frames_and_columns(draw):
    """A frame of columns of a few dtypes (consolidated in blocks, or added one by one, or from one 2-D
    array) and some of its columns in any order."""
    n = draw(st.integers(1, 6))
    how = draw(st.sampled_from(["dict", "one by one", "2-D array"]))
    rng = np.random.default_rng(draw(st.integers(0, 99)))
    if how == "2-D array":
        arr = rng.standard_normal((n, draw(st.integers(1, 4)))).astype(draw(st.sampled_from(["float32", "float64"])))
        df = pd.DataFrame(arr if draw(st.booleans()) else np.asfortranarray(arr), columns=[f"c{j}" for j in range(arr.shape[1])])
    else:
        dtypes = draw(st.lists(st.sampled_from(["float32", "float64", "int64", "int8", "bool"]), min_size=1, max_size=5))
        cols = {f"c{j}": (rng.standard_normal(n) * 5).astype(dt) for j, dt in enumerate(dtypes)}
        df = pd.DataFrame(cols) if how == "dict" else pd.DataFrame(index=range(n))
        if how == "one by one":
            for k, v in cols.items():
                df[k] = v
    chosen = draw(st.lists(st.sampled_from(list(df.columns)), min_size=1, max_size=len(df.columns), unique=True))
    return df, chosen


@settings(max_examples=150, deadline=None)
@given(frames_and_columns())
def test_frame_columns_read_as_pandas_reads_them_and_never_writable(case):
    df, cols = case
    before = df.copy()
    got = pandas_frames._frame_values(df, cols, "df", None)
    want = df[cols].to_numpy()
    if want.dtype == object:  # numbers and booleans together: read as float64
        want = df[cols].astype("float64").to_numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    if np.shares_memory(got, df[cols[0]].to_numpy()):  # the frame's own memory: read-only
        assert not got.flags.writeable
    pd.testing.assert_frame_equal(df, before)
