import warnings
"""Out-of-core path on a real dask.distributed LocalCluster: results equal the in-memory path exactly."""
import tracemalloc

import dask.array as da
import dask.dataframe as dd
import keras
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from distributed import Client, LocalCluster

import statebatch as sb
from statebatch.dask import feature_stats, prepare
from statebatch.keras import LaneResetCallback, ShardDataset, StatefulDataset
from statebatch.materialise.gather import LaneReader
from statebatch.sources.npy import BatchShards, NpyStore, ShardedStore, StoredSeries, write_batches, write_npy


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    with Client(cluster) as c:
        yield c
    cluster.close()


def long_frame(n_series=25, seed=0):
    rng = np.random.default_rng(seed)
    lens = rng.integers(3, 80, size=n_series)
    df = pd.DataFrame({
        "id": np.repeat([f"s{i:03d}" for i in range(n_series)], lens),
        "t": np.concatenate([np.arange(n) for n in lens]),
        "a": rng.normal(size=lens.sum()).astype("float32"),
        "b": rng.normal(size=lens.sum()).astype("float32"),
    })
    return df


def assert_batches_equal(x, y):
    assert len(x) == len(y)
    for p, q in zip(x, y):
        np.testing.assert_array_equal(p, q)


def test_dask_array_windows_and_lanes_equal_in_memory(client, tmp_path):
    assert len(client.scheduler_info()["workers"]) == 2
    x = np.random.default_rng(1).normal(size=(20_011, 4)).astype("float32")
    d = da.from_array(x, chunks=(3_000, 2))  # blocks split columns too: prepare rechunks whole rows
    store = prepare(d, tmp_path / "series")
    assert isinstance(store, ShardedStore) and store.shape == x.shape and len(store.segments) == 7
    np.testing.assert_array_equal(store.read(2_990, 3_010), x[2_990:3_010])  # across a shard boundary
    w_mem, w_ooc = sb.make_windows(x, 32, stride=3, targets="next"), sb.make_windows(store, 32, stride=3, targets="next")
    assert w_mem.n_windows == w_ooc.n_windows
    for idx in (np.arange(64), np.array([6000, 3, 999]), slice(100, 164)):
        assert_batches_equal(w_mem.take(idx), w_ooc.take(idx))
    a_mem, a_ooc = sb.arrange_stateful(x, 50, 16), sb.arrange_stateful(d, 50, 16)  # a dask array directly
    assert a_mem.n_batches == a_ooc.n_batches
    for k in range(a_mem.n_batches):
        assert_batches_equal(a_mem.batch(k), a_ooc.batch(k))


@pytest.mark.parametrize("source", ["from_pandas", "parquet"])
def test_long_dask_frame_equals_pandas(client, tmp_path, source):
    df = long_frame()
    scrambled = df.sample(frac=1.0, random_state=3)
    if source == "parquet":
        scrambled.to_parquet(tmp_path / "long.parquet", row_group_size=200)
        ddf = dd.read_parquet(tmp_path / "long.parquet")  # read through pyarrow
    else:
        ddf = dd.from_pandas(scrambled, npartitions=5)
    stored = prepare(ddf, tmp_path / "prepared", id_col="id", time_col="t", target_cols=["a"])
    frame = ddf.compute()  # the rows in the Dask frame's order (from_pandas sorts by index)
    assert isinstance(stored, StoredSeries) and stored.ids == list(pd.unique(frame["id"]))  # as pandas lists them
    assert stored.info["rows"] == len(df) and stored.info["non_finite"] == 0
    kw = dict(id_col="id", time_col="t")
    # arrangement
    # stored target columns are the next-value targets, as target_cols are for a frame
    a_mem, a_ooc = sb.arrange_stateful(frame, 7, 4, target_cols=["a"], **kw), sb.arrange_stateful(stored, 7, 4)
    assert a_mem.series_ids == a_ooc.series_ids
    for k in range(a_mem.n_batches):
        assert_batches_equal(a_mem.batch(k), a_ooc.batch(k))
    # windows with target columns
    with pytest.warns(sb.StatebatchWarning, match="shorter than one window"):  # the same short series, both ways
        w_mem = sb.make_windows(frame, 5, target_cols=["a"], **kw)
    with pytest.warns(sb.StatebatchWarning, match="shorter than one window"):
        w_ooc = sb.make_windows(stored, 5, target_cols=["a"])
    assert w_mem.left_out == w_ooc.left_out
    assert_batches_equal(w_mem.take(np.arange(w_mem.n_windows)), w_ooc.take(np.arange(w_ooc.n_windows)))
    # bucketing
    b_mem, b_ooc = sb.bucket_batches(frame, 6, seed=2, **kw), sb.bucket_batches(stored, 6, seed=2)
    for x, y in zip(b_mem.batch_objects(0), b_ooc.batch_objects(0)):
        np.testing.assert_array_equal(x.X, y.X)
        np.testing.assert_array_equal(x.indices, y.indices)


def test_validation_and_scaling_run_as_tasks(client, tmp_path):
    df = long_frame(seed=4)
    ddf = dd.from_pandas(df, npartitions=3)
    mean, std = feature_stats(ddf, id_col="id", time_col="t")
    np.testing.assert_allclose(mean, df[["a", "b"]].mean().to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(std, df[["a", "b"]].std(ddof=0).to_numpy(), rtol=1e-5)
    stored = prepare(ddf, tmp_path / "scaled", id_col="id", time_col="t", scale=(mean, std))
    scaled = df.copy()
    scaled[["a", "b"]] = ((df[["a", "b"]] - mean) / std).astype("float32")
    a_mem, a_ooc = sb.arrange_stateful(scaled, 5, 3, id_col="id", time_col="t"), sb.arrange_stateful(stored, 5, 3)
    np.testing.assert_allclose(a_mem.X, a_ooc.X, rtol=1e-5, atol=1e-6)

    dup = pd.concat([df, df.iloc[:1]])
    with pytest.raises(sb.OrderError, match="duplicate"):
        prepare(dd.from_pandas(dup, npartitions=2), tmp_path / "dup", id_col="id", time_col="t")
    nan = df.copy()
    nan.loc[5, "a"] = np.nan
    with pytest.raises(sb.DataValueError, match="NaN"):
        prepare(dd.from_pandas(nan, npartitions=2), tmp_path / "nan", id_col="id", time_col="t")
    with pytest.raises(sb.ParameterError, match="id_col"):
        prepare(ddf, tmp_path / "noid")


def test_keras_reads_lanes_from_the_store_and_from_batch_shards(client, tmp_path):
    x = np.random.default_rng(5).normal(size=(6_000, 2)).astype("float32")
    store = prepare(da.from_array(x, chunks=1_000), tmp_path / "s")
    a_mem, a_ooc = sb.arrange_stateful(x, 25, 4, targets=None), sb.arrange_stateful(store, 25, 4, targets=None)
    keras.utils.set_random_seed(0)
    inp = keras.Input(batch_shape=(4, 25, 2))
    model = keras.Model(inp, keras.layers.LSTM(3, return_sequences=True, stateful=True)(inp))
    p_mem = model.predict(StatefulDataset(a_mem), callbacks=[LaneResetCallback(a_mem)], verbose=0)
    p_ooc = model.predict(StatefulDataset(a_ooc), callbacks=[LaneResetCallback(a_ooc)], verbose=0)
    np.testing.assert_array_equal(p_mem, p_ooc)
    shards = write_batches(a_ooc, tmp_path / "batches", batches_per_shard=7)
    assert isinstance(shards, BatchShards) and len(shards) == a_ooc.n_batches
    for k in (0, 6, 7, len(shards) - 1):
        assert_batches_equal(shards[k], a_mem.batch(k))
    p_shards = model.predict(ShardDataset(shards), callbacks=[LaneResetCallback(shards)], verbose=0)
    np.testing.assert_array_equal(p_mem, p_shards)


def test_reading_batches_keeps_memory_bounded(tmp_path):
    rows, f = 1_000_000, 16  # 64 MB on disk
    store = write_npy(tmp_path / "big.npy", (np.full((100_000, f), i, np.float32) for i in range(10)), (rows, f),
                      np.float32)
    arranged = sb.arrange_stateful(store, 100, 32, targets=None)
    tracemalloc.start()
    total = 0.0
    for k in range(arranged.n_batches):
        (xb,) = arranged.batch(k)
        total += float(xb[0, 0, 0])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # per-lane read-ahead buffers: 16 chunks or LaneReader.min_read_bytes per lane, whichever is more (8 MB)
    readahead = 32 * max(16 * 100 * f * 4, LaneReader.min_read_bytes)
    assert peak < readahead + 2_000_000, peak  # the read-ahead and a few batches, not the 64 MB series
    tracemalloc.start()
    rep = sb.validate(arranged, shuffle=False, emit_warnings=False)  # checks one batch, reads no more
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rep.ok and "first batch" in rep.warnings[0] and peak < 2 * readahead + 2_000_000  # old + new read-ahead
    assert isinstance(NpyStore(tmp_path / "big.npy")[5], np.ndarray)


@given(seed=st.integers(0, 10**6), nparts=st.integers(1, 7), with_time=st.booleans())
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_dask_equals_pandas_for_any_partitioning_and_row_order(seed, nparts, with_time):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    df = pd.DataFrame({"id": rng.integers(0, 4, n), "t": rng.permutation(n), "v": rng.normal(size=n),
                       "y": rng.normal(size=n)})
    time_col = "t" if with_time else None
    a = sb.make_windows(df, 2, id_col="id", time_col=time_col, feature_cols=["v"], target_cols=["y"],
                        targets="aligned", gaps="accept")  # times are a random subset per series
    b = sb.make_windows(dd.from_pandas(df, npartitions=nparts), 2, id_col="id", time_col=time_col, feature_cols=["v"],
                        target_cols=["y"], targets="aligned", gaps="accept")
    assert a.series_ids == b.series_ids
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)


def test_prepared_store_has_a_manifest_that_reading_verifies(tmp_path):
    import os

    from statebatch.errors import StoreError
    from statebatch.sources.npy import open_prepared

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"id": rng.integers(0, 4, 300), "v": rng.normal(size=300).astype("float32")})
    out = tmp_path / "prep"
    stored = prepare(dd.from_pandas(df, npartitions=3), out, id_col="id")
    again = open_prepared(out)
    assert again.ids == stored.ids
    np.testing.assert_array_equal(sb.make_windows(again, 3).X, sb.make_windows(stored, 3).X)
    again.store.verify()
    shard = sorted(out.glob("part-*.npy"))[0]
    original = np.load(shard)
    stat = shard.stat()
    # same shape and dtype, other rows, modification time put back: only the checksum can tell
    np.save(shard, original[::-1].copy())
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    with pytest.raises(StoreError, match="checksum"):
        open_prepared(out).store.verify()
    np.save(shard, original.astype("float64"))  # rewritten with another dtype
    with pytest.raises(StoreError, match=str(shard.name)):
        open_prepared(out)
    with pytest.raises(StoreError, match="modified while in use"):  # the open store notices too
        sb.make_windows(stored, 3, batch_size=8).batch(0)
    shard.write_bytes(shard.read_bytes()[:200])  # truncated
    with pytest.raises(StoreError, match=str(shard.name)):
        open_prepared(out)
    shard.unlink()  # missing
    with pytest.raises(StoreError, match="does not exist"):
        open_prepared(out)
    (out / "manifest.json").unlink()
    with pytest.raises(StoreError, match="manifest"):
        open_prepared(out)


@pytest.mark.parametrize("gaps", ["error", "split", "accept"])
def test_dask_holes_in_time_stamps_are_treated_like_pandas(gaps):
    df = pd.DataFrame({"id": [0] * 5 + [1] * 5, "t": [0, 1, 2, 5, 6, 0, 1, 2, 3, 4], "v": np.arange(10.0)})
    results = []
    for src in (df, dd.from_pandas(df, npartitions=2)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sb.StatebatchWarning)
                w = sb.make_windows(src, 2, id_col="id", time_col="t", gaps=gaps)
            results.append((w.series_ids, w.X.tolist()))
        except sb.DataValueError as err:
            results.append(("refused", "hole" in str(err)))
    assert results[0] == results[1]
    assert (results[0][0] == "refused") == (gaps == "error")


def test_batches_of_a_store_checked_when_written_skip_the_nan_scan_and_others_keep_it(tmp_path):
    from statebatch.sources.npy import open_prepared

    x = np.random.default_rng(9).normal(size=(2_000, 2)).astype("float32")
    clean = prepare(da.from_array(x, chunks=500), tmp_path / "clean")
    reopened = open_prepared(tmp_path / "clean")
    bad = x.copy()
    bad[1_234, 1] = np.inf
    with pytest.raises(sb.DataValueError, match="1 inf value") as refused:  # NaN and inf are allowed separately
        prepare(da.from_array(bad, chunks=500), tmp_path / "refused", allow_nan=True)
    assert "allow_inf=True" in str(refused.value) and "allow_nan" not in str(refused.value)
    dirty = prepare(da.from_array(bad, chunks=500), tmp_path / "dirty", allow_inf=True)
    assert clean.info["non_finite"] == 0 and dirty.info["non_finite"] == 1 and dirty.info["inf"] == 1
    with pytest.warns(FutureWarning, match="allow_nan=True and/or allow_inf=True"):  # the old name, one release
        old = prepare(da.from_array(bad, chunks=500), tmp_path / "old", allow_non_finite=True)
    assert old.info["inf"] == 1 and old.info["nan"] == 0
    assert clean.finite_checked and reopened.finite_checked and not dirty.finite_checked
    assert not open_prepared(tmp_path / "dirty").finite_checked
    for store in (clean, reopened):  # same batches as in memory; X is not scanned again as it is read
        a = sb.arrange_stateful(store, 20, 4)
        assert a._check_batches and a._x_checked
        np.testing.assert_array_equal(a.X, sb.arrange_stateful(x, 20, 4).X)
    a = sb.arrange_stateful(dirty, 20, 4)
    assert a._check_batches and not a._x_checked
    with pytest.raises(sb.DataValueError, match="NaN/inf"):
        a.X  # noqa: B018  the counted inf is found as the batches are read
    # a prepared series store: the feature store is checked; targets are read and checked batch by batch
    # (NaN targets are refused by prepare unless allowed, issue 21; allowed here, the read-time check remains)
    df = pd.DataFrame({"id": np.repeat([0, 1], 300), "a": x[:600, 0], "y": x[:600, 1]})
    df.loc[450, "y"] = np.nan
    with pytest.raises(sb.DataValueError, match="target columns"):
        prepare(dd.from_pandas(df, npartitions=2), tmp_path / "refused", id_col="id", feature_cols=["a"],
                target_cols=["y"])
    stored = prepare(dd.from_pandas(df, npartitions=2), tmp_path / "series", id_col="id", feature_cols=["a"],
                     target_cols=["y"], allow_nan=True)
    assert stored.store.finite_checked and not stored.target_store.finite_checked
    arr = sb.arrange_stateful(stored, 10, 2)
    with pytest.raises(sb.DataValueError, match="in y"):
        arr.X  # noqa: B018
