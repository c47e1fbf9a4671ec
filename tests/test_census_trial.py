"""Census, part 3: inputs a newcomer found that escaped as foreign exceptions or gave silent wrong
results before; each now gets a statebatch error with the fix (or a warning)."""

import json
import pathlib
import tempfile

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

import statebatch as sb
import statebatch.keras as sk
from statebatch.dask import prepare
from statebatch.errors import (BatchIndexError, DataValueError, DTypeError, OrderError, ParameterError, ShapeError,
                               StatebatchError, StoreError)
from statebatch.sklearn import WindowTransformer, time_split
from statebatch.sources.npy import open_prepared

TMP = pathlib.Path(tempfile.mkdtemp(prefix="statebatch-census3-"))
X3 = np.zeros((64, 5, 1), dtype="float32")
w = sb.make_windows(np.arange(40.0), 4, batch_size=8)
bk = sb.bucket_batches([np.zeros((n, 1)) for n in (3, 5, 8, 2)], 2, seed=0)
pdf = pd.DataFrame({"id": [0, 0, 1, 1], "t": [0, 1, 0, 1], "v": [1.0, 2, 3, 4], "s": ["a", "b", "c", "d"]})
(TMP / "a_file").write_text("x")


def _multiindex(order):
    return pd.DataFrame({"v": np.arange(4.0)}, index=pd.MultiIndex.from_tuples(order, names=["id", "t"]))


def _prepared_with(edit):
    out = pathlib.Path(tempfile.mkdtemp(dir=TMP))
    prepare(dd.from_pandas(pd.DataFrame({"id": [0] * 6 + [1] * 6, "v": np.arange(12.0)}), npartitions=1), out,
            id_col="id")
    meta = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(edit(meta)))
    return out


def _lengths_edited(meta):
    meta["lengths"] = [7, 5]
    return meta


CASES = [
    ("duplicate column names", lambda: sb.make_windows(pd.DataFrame(np.zeros((6, 2)), columns=["a", "a"]), 2),
     ShapeError),
    ("MultiIndex frame", lambda: sb.make_windows(_multiindex([(0, 0), (0, 1), (1, 0), (1, 1)]), 2), ShapeError),
    ("MultiIndex out of order", lambda: sb.make_windows(_multiindex([(0, 1), (0, 0), (1, 1), (1, 0)]), 2), ShapeError),
    ("max_starts of the wrong length", lambda: sb.plan_windows([10, 5], 3, max_starts=[1, 1, 1]), ParameterError),
    ("max_starts broadcast", lambda: sb.plan_windows([10, 5], 3, max_starts=[1]), ParameterError),
    ("num_replicas 0", lambda: sb.validate(X3, batch_size=32, num_replicas=0), ParameterError),
    ("shuffle junk", lambda: sb.validate(X3, shuffle="sometimes"), ParameterError),
    ("model junk", lambda: sb.validate(X3, model=42), ParameterError),
    ("time_split val text", lambda: time_split(np.zeros(10), val="0.2"), ParameterError),
    ("time_split val None", lambda: time_split(np.zeros(10), val=None), ParameterError),
    ("time_split id_col missing", lambda: time_split(pdf, id_col="nope"), ParameterError),
    ("time_split time_col missing", lambda: time_split(pdf, id_col="id", time_col="nope"), ParameterError),
    ("time_split NaN ids", lambda: time_split(pd.DataFrame({"id": [0] * 10 + [np.nan] * 10, "v": range(20)}),
                                              id_col="id", val=0.2, test=0.2), DataValueError),
    ("time_split unsorted time index", lambda: time_split(pd.DataFrame(
        {"v": range(4)}, index=pd.to_datetime(["2020-01-04", "2020-01-01", "2020-01-02", "2020-01-03"]))), OrderError),
    ("prepare empty frame", lambda: prepare(dd.from_pandas(pdf[pdf.id > 5], npartitions=1), id_col="id",
                                            feature_cols=["v"]), DataValueError),
    ("prepare text column", lambda: prepare(dd.from_pandas(pdf, npartitions=1), id_col="id"), DTypeError),
    ("prepare empty array", lambda: prepare(da.zeros((0, 2))), DataValueError),
    ("prepare out_dir is a file", lambda: prepare(dd.from_pandas(pdf, npartitions=1), TMP / "a_file", id_col="id",
                                                  feature_cols=["v"]), StoreError),
    ("prepare id_col missing", lambda: prepare(dd.from_pandas(pdf, npartitions=1), id_col="nope"), ParameterError),
    ("prepare dtype junk", lambda: prepare(dd.from_pandas(pdf, npartitions=1), id_col="id", feature_cols=["v"],
                                           dtype="junk"), ParameterError),
    ("prepare scale for more features", lambda: prepare(dd.from_pandas(pdf, npartitions=1), id_col="id",
                                                        time_col="t", feature_cols=["v"], scale=([0, 0], [1, 1])),
     ShapeError),
    ("manifest empty", lambda: open_prepared(_prepared_with(lambda m: {})), StoreError),
    ("manifest a list", lambda: open_prepared(_prepared_with(lambda m: [1, 2])), StoreError),
    ("manifest lengths edited", lambda: open_prepared(_prepared_with(_lengths_edited)), StoreError),
    ("dataset index text", lambda: sk.WindowDataset(w)["0"], ParameterError),
    ("bucket dataset index out of range", lambda: sk.BucketDataset(bk)[10], BatchIndexError),
    ("reset_rows fractional rows", lambda: sk.reset_rows(_stateful_model(), [0.5]), ParameterError),
    ("fit_stateful epochs text", lambda: sk.fit_stateful(_stateful_model(), sb.arrange_stateful(np.arange(40.0), 4, 2),
                                                         epochs="2"), ParameterError),
    ("target_features booleans", lambda: sb.make_windows(np.arange(20.0).reshape(10, 2), 2, targets="next",
                                                         target_features=[True]), ParameterError),
    ("NaN in target columns", lambda: sb.make_windows(pd.DataFrame(
        {"v": np.arange(10.0), "y": np.r_[np.arange(5.0), np.nan, np.arange(4.0)]}), 2, feature_cols=["v"],
        target_cols=["y"]), DataValueError),
    ("NaN in bucketing targets", lambda: sb.bucket_batches([np.zeros((n, 1)) for n in (3, 4, 5, 6, 7)], 2,
                                                           targets=[0, np.nan, 1, 2, 3], seed=0), DataValueError),
    ("NaN in per-step bucketing targets", lambda: sb.bucket_batches(
        [np.zeros((n, 1)) for n in (3, 4)], 2, targets=[np.zeros(3), np.r_[0, np.nan, 0, 0]], return_sequences=True,
        seed=0), DataValueError),
    ("pad_value NaN on floats", lambda: sb.arrange_stateful(np.arange(11.0), 3, 2, pad_value=np.nan), ParameterError),
    ("pad_value inf in bucketing", lambda: sb.bucket_batches([np.zeros((n, 1)) for n in (3, 4)], 2, pad_value=np.inf),
     ParameterError),
    ("time_split of a list (split by position)", lambda: _split_sizes(time_split(list(range(20)), val=0.2, test=0.2)),
     None),
    ("transformer dtype junk", lambda: WindowTransformer(2, dtype="junk").fit(np.zeros((10, 1))), ParameterError),
]


_MODEL = []


def _stateful_model():
    if not _MODEL:
        import keras

        inp = keras.Input(batch_shape=(2, 4, 1))
        _MODEL.append(keras.Model(inp, keras.layers.GRU(2, stateful=True)(inp)))
    return _MODEL[0]


def _split_sizes(parts):
    assert [len(p) for p in parts[:3]] == [12, 4, 4] and parts[0][0] == 0


@pytest.mark.parametrize("name,call,expected", CASES, ids=[c[0] for c in CASES])
def test_census_trial(name, call, expected):
    if expected is None:  # a correct result, checked inside the call
        call()
        return
    with pytest.raises(expected) as info:
        call()
    assert isinstance(info.value, StatebatchError) and isinstance(info.value, (ValueError, TypeError))
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize("args", [["check", "{gz}", "--timesteps", "2"], ["check", "{ok}", "--timesteps", "-3"]])
def test_cli_gzip_and_negative_timesteps(args, capsys):
    import gzip

    from statebatch.cli import main

    ok = TMP / "ok.npy"
    np.save(ok, np.zeros((10, 5, 1)))
    gz = TMP / "gz.npy"
    gz.write_bytes(gzip.compress(ok.read_bytes()))
    argv = [a.format(gz=gz, ok=ok) for a in args]
    if "-3" in argv:
        with pytest.raises(SystemExit) as info:  # argparse: a usage error naming --timesteps, exit 2
            main(argv)
        assert info.value.code == 2 and "positive integer" in capsys.readouterr().err
    else:
        assert main(argv) == 2
        assert "magic bytes" in capsys.readouterr().err
