"""One vocabulary for the input (issue 23): ``options=InputOptions(...)`` next to the same keywords in
``make_windows``, ``arrange_stateful`` and ``bucket_batches``, and NaN and inf allowed separately, up
front in memory and batch by batch out of core."""

import numpy as np
import pandas as pd
import pytest

import statebatch as sb
from statebatch.errors import DataValueError, ParameterError
from statebatch.sources.npy import NpyStore


def _frame():
    return pd.DataFrame({"id": np.repeat(["a", "b"], 12), "t": np.tile(np.arange(12), 2),
                         "x": np.arange(24.0), "y": -np.arange(24.0)})


BUILDERS = {
    "make_windows": lambda data, **kw: sb.make_windows(data, 4, **kw),
    "arrange_stateful": lambda data, **kw: sb.arrange_stateful(data, 4, 2, **kw),
    "bucket_batches": lambda data, **kw: sb.bucket_batches(data, 2, seed=0, **kw),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_options_give_what_the_same_keywords_give(name):
    build, df = BUILDERS[name], _frame()
    given = dict(id_col="id", time_col="t", feature_cols=["x", "y"], dtype="float32")
    by_keywords = build(df, **given)
    by_options = build(df, options=sb.InputOptions(**given))
    mixed = build(df, options=sb.InputOptions(id_col="id", time_col="t"), feature_cols=["x", "y"], dtype="float32")
    for other in (by_options, mixed):
        assert getattr(other, "series_ids", None) == getattr(by_keywords, "series_ids", None)
        for got, want in zip(other.batch(0), by_keywords.batch(0)):
            assert got.dtype == want.dtype == np.float32
            np.testing.assert_array_equal(got, want)
    with pytest.raises(ParameterError, match="given twice"):
        build(df, options=sb.InputOptions(id_col="id", time_col="t"), time_col="x")
    with pytest.raises(ParameterError, match="options must be a statebatch.InputOptions"):
        build(df, options={"id_col": "id"})


def _with(value, at=(2, 0)):
    series = [np.arange(10.0)[:, None] + 100 * i for i in range(3)]
    series[at[0]][at[1] + 3, 0] = value
    return series


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_are_allowed_separately_in_memory(name, bad):
    build = BUILDERS[name]
    series = _with(bad)
    nan = bool(np.isnan(bad))
    with pytest.raises(DataValueError, match="series 2 step 3"):
        build(series)
    with pytest.raises(DataValueError, match=("NaN" if nan else "inf") + " value"):  # the other kind is no pass
        build(series, allow_nan=not nan, allow_inf=nan)
    result = build(series, allow_nan=nan, allow_inf=not nan)
    assert any((np.isnan(b[0]) if nan else np.isinf(b[0])).any() for b in result.batches())
    build(series, options=sb.InputOptions(allow_nan=True, allow_inf=True))


def test_targets_are_checked_with_the_same_two_switches():
    x = np.arange(20.0)
    y = np.arange(20.0)
    y[5] = np.inf
    with pytest.raises(DataValueError, match="targets has 1 inf"):
        sb.make_windows(x, 4, targets=y, allow_nan=True)
    assert np.isinf(sb.make_windows(x, 4, targets=y, allow_inf=True).y).any()
    with pytest.raises(DataValueError, match="targets"):
        sb.arrange_stateful(x, 4, 2, targets=y, allow_nan=True)
    sb.arrange_stateful(x, 4, 2, targets=y, allow_inf=True)
    per_sequence = np.array([1.0, np.nan, 3.0])
    seqs = [np.ones(n) for n in (3, 4, 5)]
    with pytest.raises(DataValueError, match="targets hold 1 NaN value"):
        sb.bucket_batches(seqs, 2, targets=per_sequence, allow_inf=True, seed=0)
    sb.bucket_batches(seqs, 2, targets=per_sequence, allow_nan=True, seed=0)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_out_of_core_batches_are_scanned_for_each_kind_unless_allowed(tmp_path, bad):
    data = np.arange(200.0, dtype=np.float32)[:, None]
    data[150, 0] = bad
    np.save(tmp_path / "x.npy", data)
    store = NpyStore(tmp_path / "x.npy")
    nan = bool(np.isnan(bad))
    kind = "NaN" if nan else "inf"
    for build in (lambda **kw: sb.make_windows(store, 10, **kw), lambda **kw: sb.arrange_stateful(store, 10, 2, **kw)):
        result = build()  # not read up front: out of core
        with pytest.raises(DataValueError, match=f"holds {kind} in [Xy]"):
            list(result.batches())
        with pytest.raises(DataValueError, match=f"holds {kind} in [Xy]"):
            list(build(allow_nan=not nan, allow_inf=nan).batches())
        served = np.concatenate([b[0].reshape(-1) for b in build(allow_nan=nan, allow_inf=not nan).batches()])
        assert (np.isnan(served) if nan else np.isinf(served)).any()
