"""A new input kind from outside the package, with one ``register_input`` call (issue 23).

``ColumnTable`` (a dict of named columns, nothing statebatch knows) and a toy file format ``.toycsv``
are taught to statebatch here, in the test, the way a user would; every entry point and the CLI then
read them and give the same arrays as the equivalent numpy/pandas input.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch.cli import main
from statebatch.errors import DTypeError, ParameterError
from statebatch.sources.series import as_series


class ColumnTable:
    """A toy column store: named 1-D columns of one length (a stand-in for an Arrow table, a HF dataset)."""

    def __init__(self, columns: dict):
        self.columns = {k: np.asarray(v) for k, v in columns.items()}


def table_to_series(table: ColumnTable, options: sb.InputOptions, what: str) -> sb.SeriesSet:
    """Read a ColumnTable with the caller's options: series by ``id_col`` (first appearance), rows by
    ``time_col``, ``feature_cols`` (default: the other columns)."""
    cols = table.columns
    names = list(options.feature_cols or [c for c in cols if c not in (options.id_col, options.time_col)])
    values = np.column_stack([cols[c] for c in names])
    ids = cols[options.id_col] if options.id_col else np.zeros(len(values), dtype=int)
    order = np.lexsort((cols[options.time_col],) if options.time_col else (np.arange(len(values)),))
    values, ids = values[order], ids[order]
    seen = list(dict.fromkeys(cols[options.id_col].tolist())) if options.id_col else [0]
    return sb.SeriesSet.from_arrays([values[ids == i] for i in seen], ids=seen, feature_names=names,
                                    dtype=options.dtype, what=what)


def read_toycsv(path) -> ColumnTable:
    """``.toycsv``: a header line of names, then comma-separated numbers (no pandas involved)."""
    lines = open(path).read().split()
    names = lines[0].split(",")
    rows = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    return ColumnTable({n: rows[:, i] for i, n in enumerate(names)})


@pytest.fixture
def toy_kind():
    kind = sb.register_input(lambda d: isinstance(d, ColumnTable), table_to_series, name="column_table",
                             suffixes=(".toycsv",), read_file=read_toycsv)
    yield kind
    sb.unregister_input("column_table")


def _long(seed=0):
    rng = np.random.default_rng(seed)
    n = [13, 9, 17]
    ids = np.repeat([7, 3, 5], n)
    t = np.concatenate([rng.permutation(k) for k in n]).astype(float)  # rows out of time order
    return {"id": ids, "t": t, "a": rng.normal(size=sum(n)), "b": rng.normal(size=sum(n))}


def test_unregistered_kind_is_refused_naming_register_input():
    with pytest.raises(DTypeError, match="register_input") as info:
        sb.make_windows(ColumnTable({"a": np.arange(5.0)}), 2)
    assert "ColumnTable" in str(info.value)
    assert "column_table" not in [k.name for k in sb.registered_inputs()]


def test_the_registration_comes_first_and_is_removed_cleanly(toy_kind):
    assert sb.registered_inputs()[0] is toy_kind
    assert toy_kind in sb.registered_inputs()
    with pytest.raises(ParameterError, match="registered already"):
        sb.register_input(lambda d: False, table_to_series, name="column_table")
    with pytest.raises(ParameterError, match="built-in"):
        sb.unregister_input("pandas")


def test_make_windows_reads_it_like_the_pandas_frame(toy_kind):
    cols = _long()
    opts = dict(id_col="id", time_col="t", feature_cols=["a", "b"])
    got = sb.make_windows(ColumnTable(cols), 4, stride=2, **opts)
    want = sb.make_windows(pd.DataFrame(cols), 4, stride=2, **opts)
    np.testing.assert_array_equal(got.X, want.X)
    assert got.X.shape == want.X.shape and len(got.X) > 0
    # the dtype option reaches the registration, and InputOptions give the same series as keywords
    got32 = sb.make_windows(ColumnTable(cols), 4, stride=2, dtype="float32", **opts)
    assert got32.X.dtype == np.float32
    np.testing.assert_array_equal(got32.X, want.X.astype(np.float32))
    ss = as_series(ColumnTable(cols), options=sb.InputOptions(**opts))
    assert ss.ids == [7, 3, 5] and ss.feature_names == ["a", "b"]
    np.testing.assert_array_equal(ss.lengths, as_series(pd.DataFrame(cols), **opts).lengths)


def test_arrange_stateful_and_explain_read_it_like_numpy(toy_kind):
    x = np.arange(60, dtype=float).reshape(30, 2)
    got = sb.arrange_stateful(ColumnTable({"a": x[:, 0], "b": x[:, 1]}), 5, 2, targets="next")
    want = sb.arrange_stateful(x, 5, 2, targets="next")
    for g, w in zip(got.arrays(), want.arrays()):
        np.testing.assert_array_equal(g, w)
    assert str(sb.explain(got)) == str(sb.explain(want))


def test_bucket_batches_reads_it_like_a_list_of_arrays(toy_kind):
    cols = _long(1)
    got = sb.bucket_batches(ColumnTable(cols), 2, id_col="id", time_col="t", feature_cols=["a"], shuffle=False)
    df = pd.DataFrame(cols)
    seqs = [g.sort_values("t")[["a"]].to_numpy() for _, g in df.groupby("id", sort=False)]
    want = sb.bucket_batches(seqs, 2, shuffle=False)
    n = want.plan().n_batches
    assert got.plan().n_batches == n > 1 and got.n_sequences == want.n_sequences == 3
    for k in range(n):
        np.testing.assert_array_equal(got.batch(k)[0], want.batch(k)[0])


def test_validate_checks_windows_built_from_it(toy_kind):
    x = np.sin(np.arange(40.0))
    x[17] = np.nan
    table = ColumnTable({"a": x})
    with pytest.raises(sb.DataValueError, match="NaN"):
        sb.make_windows(table, 5)
    w = sb.make_windows(table, 5, allow_nan=True)
    rep = sb.validate(w.X, raise_errors=False, emit_warnings=False)
    want = sb.validate(sb.make_windows(x, 5, allow_nan=True).X, raise_errors=False, emit_warnings=False)
    assert not rep.ok and str(rep) == str(want)


def _write_toy(path, cols):
    names = list(cols)
    rows = np.column_stack([cols[n] for n in names])
    path.write_text(",".join(names) + "\n" + "\n".join(",".join(repr(float(v)) for v in r) for r in rows) + "\n")


def test_the_cli_reads_the_registered_suffix(toy_kind, tmp_path, capsys):
    cols = _long(2)
    toy, csv = tmp_path / "long.toycsv", tmp_path / "long.csv"
    _write_toy(toy, cols)
    pd.DataFrame(cols).to_csv(csv, index=False)
    args = ["--id-col", "id", "--time-col", "t", "--timesteps", "4", "--batch-size", "2", "--stateful"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["check", str(toy)] + args) == 0
        out_toy = capsys.readouterr().out
        assert main(["check", str(csv)] + args) == 0
        out_csv = capsys.readouterr().out
    assert "column_table" in out_toy and "3 series" in out_toy
    # the same lanes are built and checked: the validation report is the same
    assert out_toy.split("statebatch's arrangement")[1] == out_csv.split("statebatch's arrangement")[1]
    assert main(["explain", str(toy)] + args) == 0
    assert "lane" in capsys.readouterr().out


def test_the_cli_refuses_an_unregistered_suffix_naming_register_input(tmp_path, capsys):
    toy = tmp_path / "x.toycsv"
    _write_toy(toy, {"a": np.arange(5.0)})
    assert main(["check", str(toy)]) == 2
    err = capsys.readouterr().err
    assert "unsupported file type '.toycsv'" in err and "register_input" in err


def test_a_registration_that_never_reads_is_refused():
    sb.register_input(lambda d: isinstance(d, ColumnTable), lambda d, o, w: d, name="loops")
    try:
        with pytest.raises(ParameterError, match="'loops' does not turn data into series"):
            sb.make_windows(ColumnTable({"a": np.arange(5.0)}), 2)
    finally:
        sb.unregister_input("loops")


class Wrapped:
    """A toy kind that holds per-series arrays and hands them over as a list (the built-in kinds do the rest)."""

    def __init__(self, arrays):
        self.arrays = arrays


@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6), n_features=st.integers(1, 3),
       timesteps=st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_a_kind_that_hands_over_a_list_gives_the_windows_of_the_list(lengths, n_features, timesteps):
    rng = np.random.default_rng(sum(lengths))
    arrays = [rng.normal(size=(n, n_features)) for n in lengths]
    sb.register_input(lambda d: isinstance(d, Wrapped), lambda d, options, what: list(d.arrays), name="wrapped")
    try:
        got = as_series(Wrapped(arrays))
        want = as_series(arrays)
        assert got.ids == want.ids and got.lengths.tolist() == lengths
        np.testing.assert_array_equal(got.source.read(0, sum(lengths)), np.concatenate(arrays))
        if max(lengths) >= timesteps:
            np.testing.assert_array_equal(sb.make_windows(Wrapped(arrays), timesteps).X,
                                          sb.make_windows(arrays, timesteps).X)
    finally:
        sb.unregister_input("wrapped")


def test_errors_of_a_users_registration_are_named_not_passed_on():
    def picky(d):
        return d.columns is not None  # AttributeError for anything but a table

    sb.register_input(picky, table_to_series, name="picky")
    try:
        with pytest.raises(ParameterError, match="accepts of input kind 'picky' raised AttributeError"):
            sb.make_windows(np.arange(5.0), 2)
    finally:
        sb.unregister_input("picky")
    sb.register_input(lambda d: isinstance(d, ColumnTable), table_to_series, name="column_table")
    try:
        with pytest.raises(sb.DataValueError, match="input kind 'column_table' could not read data .KeyError"):
            sb.make_windows(ColumnTable({"a": np.arange(5.0)}), 2, id_col="missing")
    finally:
        sb.unregister_input("column_table")


def test_column_options_a_users_kind_did_not_apply_are_refused_naming_the_kind(toy_kind):
    """A to_series that ignores target_cols/feature_cols would drop them without a word; one that hands back
    an array cannot apply id_col: each is refused naming the user's kind (not "got ndarray")."""
    table = ColumnTable(_long(3))
    with pytest.raises(ParameterError, match="input kind 'column_table' returned data without targets") as err:
        sb.make_windows(table, 3, id_col="id", time_col="t", target_cols=["a"])
    assert "options.target_cols" in str(err.value)
    assert sb.make_windows(table, 3, id_col="id", time_col="t", feature_cols=["b"]).X.shape[-1] == 1  # applied
    sb.register_input(lambda d: isinstance(d, Wrapped), lambda d, o, w: sb.SeriesSet.from_arrays(
        d.arrays, feature_names=["x", "y"]), name="deaf")
    try:
        with pytest.raises(ParameterError, match=r"'deaf' returned data with features \['x', 'y'\]"):
            sb.make_windows(Wrapped([np.ones((6, 2))]), 3, feature_cols=["x"])
    finally:
        sb.unregister_input("deaf")
    sb.register_input(lambda d: isinstance(d, Wrapped), lambda d, o, w: np.column_stack(d.arrays), name="naive")
    try:
        for kw in ({"id_col": "x"}, {"target_cols": ["x"]}):
            with pytest.raises(ParameterError, match="input kind 'naive' turned data into a ndarray") as err:
                sb.make_windows(Wrapped([np.ones(6), np.ones(6)]), 3, **kw)
            assert "got ndarray" not in str(err.value)
    finally:
        sb.unregister_input("naive")


def test_the_cli_says_which_option_a_registered_kind_did_not_apply(toy_kind, tmp_path, capsys):
    toy = tmp_path / "long.toycsv"
    _write_toy(toy, _long(4))
    args = ["--id-col", "id", "--time-col", "t", "--timesteps", "4", "--batch-size", "2"]
    assert main(["check", str(toy), "--target", "a"] + args) == 2
    err = capsys.readouterr().err
    assert "--target a" in err and "'column_table' returned" in err and "drop --target" in err
    assert main(["check", str(toy)] + args) == 0
    err = capsys.readouterr().err  # id and time columns: handed to the kind, which statebatch cannot check
    assert "--id-col id: the input kind 'column_table'" in err and "gave 3 series" in err and "--time-col t" in err
