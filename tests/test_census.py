"""A census of bad and edge inputs: each gets a statebatch error naming the fix, or a correct result.

Each case is (name, call, expected) where expected is a statebatch error class (raised, and a
ValueError/TypeError subclass with a "Fix:" line) or a function checking the correct result.
"""

import numpy as np
import pandas as pd
import pytest

import statebatch as sb
from statebatch.errors import (DataValueError, DTypeError, LengthMismatchError, OrderError, ParameterError,
                               ShapeError, StatebatchError)
from statebatch.sklearn import time_split

x = np.arange(20.0)
unordered = pd.DataFrame({"t": [3, 1, 2, 0, 4, 5], "v": [30.0, 10, 20, 0, 40, 50]})
long_frame = pd.DataFrame({"id": [1, 0, 1, 0], "t": [1, 1, 0, 0], "v": [11.0, 1, 10, 0]})


_holed = pd.DataFrame({"v": np.arange(14.0)}, index=pd.date_range("2020-01-01", periods=20, freq="D").delete(range(5, 11)))
_long_holed = pd.DataFrame({"id": [0] * 5 + [1] * 5, "t": [0, 1, 2, 5, 6, 0, 1, 2, 3, 4], "v": np.arange(10.0)})


def _wt_xy(horizon, y):
    from statebatch.sklearn import WindowTransformer

    return WindowTransformer(2, horizon=horizon, time_col="t").fit(unordered).transform_xy(unordered, y)


def _fitted_stateful():
    from statebatch.sklearn import StatefulTransformer

    return StatefulTransformer(5, 2, tail="drop").fit(np.arange(23.0)[:, None])


def test_likely_transposed_array_warns():
    with pytest.warns(sb.StatebatchWarning, match="500 features"):
        sb.make_windows(np.random.default_rng(0).random((3, 500)), 2)


def test_transformer_warns_about_left_out_steps():
    with pytest.warns(sb.StatebatchWarning, match="left_out"):
        _fitted_stateful().transform(np.arange(23.0)[:, None])


def _windows_follow_time(w):
    np.testing.assert_array_equal(w.X[:, :, 0], [[0, 10], [10, 20], [20, 30], [30, 40], [40, 50]])
    np.testing.assert_array_equal(w.y, [0, 1000, 2000, 3000, 4000])  # target of each window's first row


def _lanes_follow_time(a):
    np.testing.assert_array_equal(a.X[..., 0].ravel(), [0, 10, 20, 30, 40, 50])
    np.testing.assert_array_equal(a.y.ravel(), [0, 1000, 2000, 3000, 4000, 5000])


def _long_frame_targets(w):
    np.testing.assert_array_equal(w.X[:, 0, 0], [10, 11, 0, 1])
    np.testing.assert_array_equal(w.y, [10, 11, 0, 1])


def _split_by_time(parts):
    assert [p["t"].tolist() for p in parts[:3]] == [[0, 1], [2, 3], [4, 5]]


CASES = [
    # missing values: refused by default, accepted on request
    ("nan in windows", lambda: sb.make_windows(np.array([1, 2, np.nan, 4, 5.0]), 2), DataValueError),
    ("inf in lanes", lambda: sb.arrange_stateful(np.array([1, 2, np.inf, 4, 5.0]), 2, 1), DataValueError),
    ("nan in sequences", lambda: sb.bucket_batches([np.ones(3), np.array([1, np.nan])], 2), DataValueError),
    ("nan in targets", lambda: sb.make_windows(x, 2, targets=np.r_[x[:-1], np.nan]), DataValueError),
    ("nan in lane targets", lambda: sb.arrange_stateful(x, 2, 1, targets=np.r_[np.nan, x[1:]]), DataValueError),
    ("nan allowed", lambda: sb.make_windows(np.array([1, 2, np.nan, 4, 5.0]), 2, allow_nan=True),
     lambda w: np.isnan(w.X).sum() == 2),
    ("allow_nan not a bool", lambda: sb.make_windows(x, 2, allow_nan="yes"), ParameterError),
    ("co2 raw record", lambda: sb.make_windows(sb.load_co2(), 52), DataValueError),
    # time order: targets follow the rows when a frame is sorted
    ("time_col with Series targets",
     lambda: sb.make_windows(unordered, 2, time_col="t", targets=unordered.v * 100, feature_cols=["v"]),
     _windows_follow_time),
    ("time_col with array targets",
     lambda: sb.make_windows(unordered, 2, time_col="t", targets=(unordered.v * 100).to_numpy(), feature_cols=["v"]),
     _windows_follow_time),
    ("time_col lanes with targets",
     lambda: sb.arrange_stateful(unordered, 2, 1, time_col="t", targets=(unordered.v * 100).to_numpy(),
                                 feature_cols=["v"]), _lanes_follow_time),
    ("id_col + time_col with targets",
     lambda: sb.make_windows(long_frame, 1, id_col="id", time_col="t", targets=long_frame.v, feature_cols=["v"]),
     _long_frame_targets),
    ("sorted long frame with a target Series", lambda: sb.make_windows(
        pd.DataFrame({"id": [0, 0, 1, 1], "t": [0, 1, 0, 1], "v": [0.0, 1, 2, 3]}), 1, id_col="id", time_col="t",
        feature_cols=["v"], targets=pd.Series([0.5, 1.5, 2.5, 3.5]), gaps="accept"),
     lambda w: w.y.ravel().tolist() == [0.5, 1.5, 2.5, 3.5]),
    ("targets of another frame", lambda: sb.make_windows(unordered, 2, time_col="t",
                                                          targets=pd.Series(range(6), index=range(10, 16))),
     LengthMismatchError),
    ("per-series target list on a reordered frame",
     lambda: sb.make_windows(long_frame, 1, id_col="id", time_col="t", targets=[np.zeros(2), np.zeros(2)]),
     LengthMismatchError),
    ("text dates", lambda: sb.make_windows(pd.DataFrame({"t": ["1/12/2020", "1/2/2020", "1/3/2020"], "v": [1.0, 2, 3]}),
                                           2, time_col="t"), DTypeError),
    ("missing time stamps", lambda: sb.make_windows(
        pd.DataFrame({"t": pd.to_datetime(["2020-01-01", None, "2020-01-03"]), "v": [1.0, 2, 3]}), 2, time_col="t"),
     DataValueError),
    ("duplicate time stamps", lambda: sb.make_windows(pd.DataFrame({"t": [1, 1, 2], "v": [1.0, 2, 3]}), 2, time_col="t"),
     OrderError),
    ("tz-aware times sort in time", lambda: sb.make_windows(
        pd.DataFrame({"t": pd.date_range("2020", periods=4, tz="Europe/Paris")[::-1], "v": [1.0, 2, 3, 4]}), 2,
        time_col="t"), lambda w: w.X[0, :, 0].tolist() == [4.0, 3.0]),
    ("WindowTransformer targets follow time", lambda: _wt_xy(1, unordered.v * 100),
     lambda r: r[0][:, :, 0].tolist() == [[0, 10], [10, 20], [20, 30], [30, 40]] and r[1].ravel().tolist() == [
         2000, 3000, 4000, 5000]),
    ("WindowTransformer array targets follow time", lambda: _wt_xy(2, (unordered.v * 100).to_numpy()),
     lambda r: r[1].ravel().tolist() == [3000, 4000, 5000]),
    ("WindowTransformer y of another frame", lambda: _wt_xy(1, pd.Series(range(6), index=range(10, 16))),
     LengthMismatchError),
    ("time_split sorts by time_col", lambda: time_split(unordered, val=0.34, test=0.34, time_col="t"), _split_by_time),
    ("time_split time_col on an array", lambda: time_split(np.zeros(10), time_col="t"), ParameterError),
    # holes in the time stamps: refused, split or accepted
    ("daily index with a 6-day hole", lambda: sb.make_windows(_holed, 3), DataValueError),
    ("hole split", lambda: sb.make_windows(_holed, 3, gaps="split"),
     lambda w: w.series_ids == [(0, 0), (0, 1)] and len(w.X) == 10),
    ("hole accepted", lambda: sb.make_windows(_holed, 3, gaps="accept"), lambda w: len(w.X) == 12),
    ("long frame hole", lambda: sb.arrange_stateful(_long_holed, 2, 1, id_col="id", time_col="t"), DataValueError),
    ("long frame hole split", lambda: sb.arrange_stateful(_long_holed, 2, 2, id_col="id", time_col="t", gaps="split"),
     lambda a: a.series_ids == [(0, 0), (0, 1), 1]),
    ("business days are regular", lambda: sb.make_windows(pd.DataFrame({"v": np.arange(30.0)},
                                                                        index=pd.bdate_range("2020-01-01", periods=30)), 3),
     lambda w: len(w.X) == 28),
    ("month ends are regular", lambda: sb.make_windows(pd.DataFrame({"v": np.arange(24.0)},
                                                                     index=pd.date_range("2020-01-31", periods=24,
                                                                                         freq="ME")), 3),
     lambda w: len(w.X) == 22),
    ("gaps option checked", lambda: sb.make_windows(_holed, 3, gaps="ignore"), ParameterError),
    # dtypes
    ("nullable Int64", lambda: sb.make_windows(pd.DataFrame({"a": pd.array([1, 2, 3, 4], dtype="Int64")}), 2),
     lambda w: w.X.dtype == np.int64),
    ("pyarrow doubles", lambda: sb.make_windows(pd.DataFrame({"a": pd.Series([1.0, 2, 3, 4], dtype="double[pyarrow]")}),
                                                2), lambda w: w.X.dtype == np.float64),
    ("category column", lambda: sb.make_windows(pd.DataFrame({"a": pd.Categorical(["a", "b", "a", "b"])}), 2),
     DTypeError),
    ("complex", lambda: sb.make_windows(np.arange(10) + 1j, 2), DTypeError),
    ("timedelta", lambda: sb.make_windows(np.arange(10).astype("m8[s]"), 2), DTypeError),
    # ambiguous shapes and lookups
    ("target list for one series", lambda: sb.make_windows(x, 2, targets=[x, x]), LengthMismatchError),
    ("list of Python lists", lambda: sb.make_windows([[1, 2, 3, 4], [5, 6, 7, 8]], 2), ShapeError),
    ("ragged list of Python lists", lambda: sb.arrange_stateful([[1, 2], [3, 4, 5]], 1, 1), ShapeError),
    ("one 2-D array to bucket", lambda: sb.bucket_batches(np.zeros((100, 20))), ShapeError),
    ("take out of range", lambda: sb.make_windows(x, 2).take([100]), ParameterError),
    ("provenance out of range", lambda: sb.make_windows(x, 2).provenance(99), ParameterError),
    ("take with a step", lambda: sb.make_windows(x, 2).take(slice(0, 10, 2)),
     lambda out: np.array_equal(out[0][:, 0, 0], [0, 2, 4, 6, 8])),
    ("take reversed", lambda: sb.make_windows(x, 2).take(slice(None, None, -1)),
     lambda out: out[0][0, 0, 0] == 18),
    ("negative lengths", lambda: sb.pack_lanes([3, -2, 1], 2), ParameterError),
    ("negative horizon", lambda: sb.plan_lanes([10], 2, 1, horizon=-3), ParameterError),
    ("split fraction as text", lambda: sb.arrange_stateful(x, 2, 2).split("0.2"), ParameterError),
    ("unbatch None", lambda: sb.arrange_stateful(x, 2, 2).unbatch(None), ParameterError),
    ("plot_lanes of an array", lambda: sb.plot_lanes(np.zeros(3)), ParameterError),
    # options honoured or refused
    ("token budget below one sequence", lambda: sb.bucket_batches([np.zeros((5, 1)), np.zeros((50, 1))], 2,
                                                                  token_budget=10, seed=0), ParameterError),
    ("token budget with drop", lambda: sb.bucket_batches([np.zeros((5, 1)), np.zeros((50, 1))], 2, token_budget=100,
                                                         remainder="drop", seed=0), ParameterError),
    ("nan padding of integers", lambda: sb.arrange_stateful(np.arange(11), 3, 2, pad_value=np.nan), ParameterError),
    ("n_ahead with return_sequences", lambda: sb.make_windows(x, 3, targets="next", n_ahead=2, return_sequences=True),
     ParameterError),
    ("horizon with array targets", lambda: sb.make_windows(x, 3, targets=x, horizon=2), ParameterError),
    ("stride gaps reported", lambda: sb.make_windows(x, 2, stride=5),
     lambda w: sum(lo.steps for lo in w.left_out) == 20 - 2 * len(w.X)),
    ("target steps of dropped steps reported", lambda: sb.arrange_stateful(np.arange(23.0), 5, 2, tail="drop"),
     lambda a: sorted((lo.first_step, lo.steps) for lo in a.left_out) == [(20, 2), (22, 1)]),
    ("transformer left_out listed", lambda: _fitted_stateful().left_out(np.arange(23.0)[:, None]),
     lambda left: sum(lo.steps for lo in left) == 3),
    # sizes said up front
    ("a billion lanes", lambda: sb.arrange_stateful(x, 2, 10**9), ParameterError),
    ("a billion timesteps", lambda: sb.make_windows(x, 10**9), DataValueError),
    ("a million buckets", lambda: sb.bucket_boundaries([1, 2, 3], n_buckets=10**6), ParameterError),
]


@pytest.mark.parametrize("name,call,expected", CASES, ids=[c[0] for c in CASES])
def test_census(name, call, expected):
    if isinstance(expected, type) and issubclass(expected, StatebatchError):
        with pytest.raises(expected) as info:
            call()
        assert isinstance(info.value, (ValueError, TypeError))
        assert "Fix:" in str(info.value)
    else:
        result = call()
        assert expected(result) in (None, True)


def test_census_is_large_enough_to_matter():
    assert len(CASES) >= 40


def _cli_files(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "ok.npy", np.zeros((10, 5, 1)))
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:150])
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header_only.csv").write_text("a,b\n")
    (tmp_path / "text.csv").write_text("a,b\nx,y\nz,w\n")
    (tmp_path / "bad.parquet").write_text("nope")
    (tmp_path / "bad.npz").write_text("nope")
    (tmp_path / "dir.npy").mkdir()
    (tmp_path / "data.txt").write_text("1,2")


CLI_CASES = ["obj.npy", "trunc.npy", "empty.csv", "header_only.csv", "text.csv", "bad.parquet", "bad.npz", "dir.npy",
             "missing.npy", "data.txt"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_bad_files_give_one_error_and_exit_2(tmp_path, capsys, name):
    from statebatch.cli import main

    _cli_files(tmp_path)
    assert main(["check", str(tmp_path / name), "--timesteps", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: ") and err[1].lstrip().startswith("Fix: ") and len(err) == 2


def test_out_of_core_batches_are_checked_for_nan_as_they_are_read(tmp_path):
    import zarr

    from statebatch.sources.npy import write_npy

    x = np.arange(200.0).reshape(100, 2)
    x[57, 1] = np.nan
    store = write_npy(tmp_path / "x.npy", [x], x.shape, x.dtype)
    z = zarr.create_array(store=str(tmp_path / "x.zarr"), shape=x.shape, chunks=(30, 2), dtype="float64")
    z[:] = x
    for source in (store, z):
        w = sb.make_windows(source, 5, batch_size=10)  # nothing read yet: accepted
        refused = []
        for k in range(w.n_batches):
            try:
                w.batch(k)
            except DataValueError:
                refused.append(k)
        assert refused == [5]  # windows 50..59 hold row 57; only that batch
        with pytest.raises(DataValueError, match="NaN"):
            _ = sb.arrange_stateful(source, 5, 2).X  # reading X materialises and checks the lanes
        with pytest.raises(DataValueError, match="NaN"):
            sb.bucket_batches([source, source], 2, seed=0).batch(0)
        assert np.isnan(sb.make_windows(source, 5, batch_size=10, allow_nan=True).batch(5)[0]).any()
