"""Data larger than memory: prepare Dask collections into sharded stores, as Dask tasks.

    import dask.dataframe as dd
    from statebatch.dask import prepare
    stored = prepare(dd.read_parquet("sensors/*.parquet"), "prepared/", id_col="sensor", time_col="t")
    arranged = statebatch.arrange_stateful(stored, timesteps=100, batch_size=64)   # plan from lengths
    model.fit(StatefulDataset(arranged), shuffle=False, callbacks=[LaneResetCallback(arranged)])

Per-series preparation (sorting by time, validation, scaling) runs as one Dask task per partition
(after a shuffle that puts every series in one partition) and writes one ``.npy`` shard per task;
the result is a :class:`~statebatch.store.StoredSeries` whose plans need only the series lengths and
whose batches are read from the shards with bounded memory. With a ``dask.distributed`` client the
tasks run on the cluster's workers; the shards must then live on storage every worker and the
training process can reach (a shared file system).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import dask
import dask.array as da
import numpy as np

from .._args import check_bool, check_choice, plain
from ..errors import DataValueError, DTypeError, OrderError, ParameterError, ShapeError, StoreError
from .npy import Segment, ShardedStore, StoredSeries, shard_record, write_manifest
from .timeindex import find_gaps

__all__ = ["prepare", "feature_stats"]


def _out_dir(out_dir: str | os.PathLike | None):
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="statebatch-")
        return Path(tmp.name), tmp
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise StoreError(f"out_dir {str(path)!r} is a file, not a directory.", "pass a directory path (new or existing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create out_dir {str(path)!r}: {exc.strerror}.", "pass a writable directory.") from None
    return path, None


def feature_stats(data: Any, *, feature_cols: Sequence[str] | None = None, id_col: str | None = None,
                  time_col: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation computed as Dask tasks (NaN ignored).

    Compute them on the training part only (e.g. ``data[:n_train]``) and pass ``scale=(mean, std)``
    to :func:`prepare` for every part.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> feature_stats(da.from_array(np.array([[1.0, 10.0], [3.0, 10.0]]), chunks=1))
    (array([ 2., 10.]), array([1., 0.]))
    """
    _check_collection(data, "feature_stats")
    if isinstance(data, da.Array):
        if id_col is not None or time_col is not None or feature_cols is not None:
            raise ParameterError("id_col/time_col/feature_cols apply to a dask DataFrame, not a dask array.",
                                 "drop them, or pass a long dask.dataframe.")
        _check_array(data)
        arr = data if data.ndim == 2 else data[:, None]
        mean, std = dask.compute(da.nanmean(arr, axis=0), da.nanstd(arr, axis=0))
        return np.asarray(mean), np.asarray(std)
    _check_frame_columns(data, id_col, time_col, feature_cols, None)
    cols = _feature_cols(data, feature_cols, id_col, time_col)
    mean, std, count = dask.compute(data[cols].mean(), data[cols].std(ddof=0), data[cols].count())
    if not (np.asarray(count) > 0).all():
        empty = [c for c, k in zip(cols, np.asarray(count)) if k == 0]
        raise DataValueError(f"columns {empty} have no value (no rows, or only NaN), so they have no mean.",
                             "compute the statistics on a part of the data with values in every feature column.")
    return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)


def _check_collection(data: Any, name: str) -> None:
    """A Dask array or Dask DataFrame (anything else has its own statebatch path)."""
    if isinstance(data, da.Array) or (hasattr(data, "to_delayed") and hasattr(data, "columns")
                                      and type(data).__module__.split(".")[0] in ("dask", "dask_expr")):
        return
    raise ParameterError(f"{name} takes a dask array or dask DataFrame, got {type(data).__name__}.",
                         "wrap in-memory data with dask.array.from_array / dask.dataframe.from_pandas, or pass it to "
                         "statebatch directly (make_windows, arrange_stateful and bucket_batches take arrays and frames).")


def _check_array(data: Any) -> None:
    """A dask array series: numeric, (steps,) or (steps, features), not empty."""
    if not _numeric_dtype(data.dtype):
        raise DTypeError(f"the dask array has non-numeric dtype {data.dtype}.", "encode its values as numbers first.")
    if data.ndim not in (1, 2):
        raise ParameterError(f"a dask array series must be (steps,) or (steps, features), got {data.shape}.",
                             "reshape it to (steps, features).")
    if 0 in data.shape:
        raise DataValueError(f"the dask array is empty (shape {data.shape}).", "pass at least one step.")


def _check_frame_columns(data: Any, id_col, time_col, feature_cols, target_cols) -> None:
    """Column arguments of a dask DataFrame: existing, distinct, numeric (checked on the frame's meta, no compute)."""
    for name, col in (("id_col", id_col), ("time_col", time_col)):
        if col is not None and (isinstance(col, (bool, np.bool_)) or not isinstance(col, (str, int, np.integer, tuple))):
            raise ParameterError(f"{name}={col!r} must name one column.", f"pass {name}='column name'.")
        if col is not None and col not in data.columns:
            raise ParameterError(f"{name}={col!r} is not a column (columns: {list(data.columns)}).",
                                 "pass an existing column name.")
    for name, cols in (("feature_cols", feature_cols), ("target_cols", target_cols)):
        if cols is None:
            continue
        if isinstance(cols, (str, bytes)) or not hasattr(cols, "__iter__"):
            raise ParameterError(f"{name}={cols!r} must be a list of column names.", f"pass {name}=[{cols!r}].")
        cols = list(cols)
        if not cols:
            raise ParameterError(f"{name} is empty.", f"name at least one column, or leave {name} out.")
        missing = [c for c in cols if c not in data.columns]
        if missing:
            raise ParameterError(f"columns {missing} are not in the frame (columns: {list(data.columns)}).",
                                 "pass existing column names.")
        clash = [c for c in cols if c in (id_col, time_col)]
        if clash:
            raise ParameterError(f"{name} {clash} names the id/time column.",
                                 "the id and time columns place rows; name value columns only.")
    cols = _feature_cols(data, feature_cols, id_col, time_col)
    if not cols:
        raise DataValueError("the frame has no feature column besides the id and time columns.",
                             "pass a frame with at least one value column.")
    bad = [c for c in cols + list(target_cols or []) if not _numeric_dtype(data[c].dtype)]
    if bad:
        raise DTypeError(f"the frame has non-numeric columns {bad} (dtypes {[str(data[c].dtype) for c in bad]}).",
                         "select numeric feature_cols=[...] or encode those columns as numbers first.")
    if time_col is not None and getattr(data[time_col].dtype, "kind", "O") not in "iufmM":
        raise DTypeError(f"the time column {time_col!r} holds {data[time_col].dtype} values, which would sort as text "
                         "(\"1/12/2020\" before \"1/2/2020\").",
                         f"parse it first: ddf[{time_col!r}] = dd.to_datetime(ddf[{time_col!r}], format=...).")


def _numeric_dtype(dtype: Any) -> bool:
    try:
        return np.issubdtype(np.dtype(dtype), np.number) or np.dtype(dtype) == bool
    except TypeError:  # pandas extension dtypes (nullable, pyarrow)
        return getattr(dtype, "kind", "O") in "iufb"


def _feature_cols(ddf, feature_cols, id_col, time_col, target_cols=None):
    if feature_cols is not None:
        return list(feature_cols)
    return [c for c in ddf.columns if c not in (id_col, time_col)]


def _check_scale(scale: Any, n_features: int) -> Any:
    """``(mean, std)`` with one value per feature (or scalars); never broadcast into more features."""
    if scale is None:
        return None
    try:
        mean, std = scale
        mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError("scale must be 'standard' or a pair (mean, std).",
                             "pass scale='standard' or scale=feature_stats(...).") from None
    for name, v in (("mean", mean), ("std", std)):
        if v.ndim > 1 or (v.ndim == 1 and len(v) != n_features):
            raise ShapeError(f"scale's {name} has shape {v.shape} for {n_features} feature(s).",
                             "pass one mean and one std per feature (or scalars).")
        if not np.isfinite(v).all():
            raise DataValueError(f"scale's {name} holds NaN/inf.", "compute it from finite training data.")
    return mean, std


def _scaled(values: np.ndarray, scale) -> np.ndarray:
    if scale is None:
        return values
    mean, std = (np.asarray(s, dtype=values.dtype) for s in scale)
    return (values - mean) / np.where(std == 0, 1, std)


def _write_block(block: np.ndarray, path: str, dtype: str, scale) -> dict:
    values = _scaled(np.ascontiguousarray(block, dtype=dtype), scale)
    n_nan, n_inf = _nan_inf(values)
    np.save(path, values)
    return {"path": path, "rows": len(values), "nan": n_nan, "inf": n_inf, "records": [shard_record(path, values)]}


def _write_partition(pdf, index: int, out_dir: str, id_col: str, time_col: str | None, cols: list,
                     tcols: list | None, dtype: str, scale, gaps: str = "error") -> dict:
    """One Dask task: sort the partition's series by time, validate, write feature/target shards."""
    import pandas as pd

    if len(pdf) == 0:
        return {"meta": pd.DataFrame({"id": [], "start": [], "stop": [], "first_row": []}), "nan": 0, "inf": 0,
                "nan_targets": 0, "inf_targets": 0, "path": None, "tpath": None}
    if time_col is not None:
        pdf = pdf.sort_values([id_col, time_col], kind="stable")
        ids, t = pdf[id_col].to_numpy(), pdf[time_col].to_numpy()
        dup = (ids[1:] == ids[:-1]) & (t[1:] == t[:-1])
        if dup.any():
            raise OrderError(f"duplicate ({id_col}, {time_col}) pairs, e.g. series {ids[1:][dup][:1].tolist()[0]!r}.",
                             "aggregate or drop duplicates before preparing.")
    else:
        pdf = pdf.sort_values([id_col, _ROW], kind="stable")  # the frame's row order within each series
    values = np.ascontiguousarray(_scaled(pdf[cols].to_numpy(dtype=dtype), scale))  # pandas gives Fortran order
    counts = dict(zip(("nan", "inf"), _nan_inf(values)))
    path = str(Path(out_dir) / f"part-{index:05d}.npy")
    np.save(path, values)
    records = [shard_record(path, values)]
    tpath = None
    counts.update(nan_targets=0, inf_targets=0)
    if tcols:
        tpath = str(Path(out_dir) / f"targets-{index:05d}.npy")
        tvalues = np.ascontiguousarray(pdf[tcols].to_numpy(dtype=dtype))
        counts.update(zip(("nan_targets", "inf_targets"), _nan_inf(tvalues)))
        np.save(tpath, tvalues)
        records.append(shard_record(tpath, tvalues))
    ids = pdf[id_col].to_numpy()
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate([[0], change])
    stops = np.concatenate([change, [len(ids)]])
    first_row = np.minimum.reduceat(pdf[_ROW].to_numpy(), starts)
    sid = ids[starts].tolist()  # Python scalars, as pandas input gives
    if time_col is not None and gaps != "accept":  # holes in each series' time stamps
        times = pdf[time_col].to_numpy()
        rows = []
        for k, (a, b) in enumerate(zip(starts.tolist(), stops.tolist())):
            holes, step = find_gaps(times[a:b])
            if len(holes) and gaps == "error":
                h = int(holes[0])
                raise DataValueError(
                    f"series {plain(sid[k])!r} has {len(holes)} hole(s) in its time stamps, the first between "
                    f"{times[a + h - 1]} and {times[a + h]} (regular step {step}).",
                    "fill the missing steps, or pass gaps='split' (each piece becomes a series) or gaps='accept'.")
            cuts = [a] + [a + int(h) for h in holes] + [b]
            rows += [((sid[k], j) if len(holes) else sid[k], lo, hi, first_row[k])
                     for j, (lo, hi) in enumerate(zip(cuts[:-1], cuts[1:]))]
        meta = pd.DataFrame(rows, columns=["id", "start", "stop", "first_row"])
        return {"meta": meta, **counts, "path": path, "tpath": tpath, "records": records}
    meta = pd.DataFrame({"id": ids[starts], "start": starts, "stop": stops, "first_row": first_row})
    return {"meta": meta, **counts, "path": path, "tpath": tpath, "records": records}


def prepare(
    data: Any,
    out_dir: str | os.PathLike | None = None,
    *,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
    scale: Any = None,
    allow_nan: bool = False,
    allow_inf: bool = False,
    gaps: str = "error",
    allow_non_finite: bool | None = None,
    _targets_checked_on_read: bool = False,
) -> ShardedStore | StoredSeries:
    """Prepare a Dask collection as sharded ``.npy`` files, one Dask task per block/partition.

    Parameters
    ----------
    data : dask.array ``(steps,)``/``(steps, features)`` (one series), or a long dask.dataframe with
        ``id_col`` (many series; e.g. ``dd.read_parquet(...)``, read through pyarrow).
    out_dir : directory for the shards; a temporary directory (removed with the result) by default.
    id_col, time_col, feature_cols, target_cols : as for pandas input. Series are sorted by
        ``time_col`` inside their task (else kept in the frame's row order) and ordered by first
        appearance in the result, as for pandas input.
    dtype : dtype of the shards (default: the data's own dtype; for a frame, the common type of the
        feature columns).
    scale : ``(mean, std)`` per feature applied while writing (see :func:`feature_stats`), or
        ``"standard"`` to compute them from all of ``data`` first.
    allow_nan, allow_inf : bool
        NaN (and +-inf) in feature or target columns raise
        :class:`~statebatch.errors.DataValueError` by default; allowed, they are only counted in
        ``info`` (``"nan"``, ``"inf"``, ``"non_finite"``).
    gaps : "error", "split" or "accept"
        Holes in a series' ``time_col`` stamps (steps missing from its regular frequency): refused
        by default, ``"split"`` cuts the series there (pieces get ids ``(id, piece)``), ``"accept"``
        keeps them, as for pandas input.
    allow_non_finite : bool, optional
        Deprecated (FutureWarning): ``allow_non_finite=True`` is ``allow_nan=True, allow_inf=True``.

    Returns
    -------
    ShardedStore (one series) or StoredSeries (many series); both are accepted by ``make_windows``,
    ``arrange_stateful`` and ``bucket_batches``.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> store = prepare(da.from_array(np.arange(12.0).reshape(6, 2), chunks=3))
    >>> store.shape, store.info["shards"], store.read(4, 6).tolist()
    ((6, 2), 2, [[8.0, 9.0], [10.0, 11.0]])
    """
    allow_nan, allow_inf = _finite_options(allow_nan, allow_inf, allow_non_finite)
    _check_dtype(dtype)
    _check_collection(data, "prepare")
    if isinstance(data, da.Array):
        if id_col is not None or time_col is not None:
            raise ParameterError("id_col/time_col apply to a dask DataFrame, not a dask array.",
                                 "drop them, or pass a long dask.dataframe.")
        _check_array(data)
    elif id_col is None:
        raise ParameterError("a dask DataFrame needs id_col (the series id column).",
                             "pass id_col=...; for one wide series use data.to_dask_array(lengths=True).")
    else:
        _check_frame_columns(data, id_col, time_col, feature_cols, target_cols)
    path, tmp = _out_dir(out_dir)
    dtype = _shard_dtype(data, dtype, feature_cols, id_col, time_col)
    if isinstance(scale, str):
        if scale != "standard":
            raise ParameterError(f"scale={scale!r} is not understood.", "pass 'standard' or (mean, std).")
        scale = feature_stats(data, feature_cols=feature_cols, id_col=id_col, time_col=time_col)
    n_features = (data.shape[1] if data.ndim == 2 else 1) if isinstance(data, da.Array) else len(
        _feature_cols(data, feature_cols, id_col, time_col))
    scale = _check_scale(scale, n_features)
    if isinstance(data, da.Array):
        return _prepare_array(data, path, tmp, dtype, scale, allow_nan, allow_inf)
    return _prepare_frame(data, path, tmp, id_col, time_col, feature_cols, target_cols, dtype, scale, gaps,
                          allow_nan, allow_inf, _targets_checked_on_read)


def _finite_options(allow_nan: Any, allow_inf: Any, allow_non_finite: Any) -> tuple[bool, bool]:
    """``allow_nan``/``allow_inf``, or the deprecated ``allow_non_finite`` (both at once), checked."""
    import warnings

    if allow_non_finite is not None:
        warnings.warn("prepare(allow_non_finite=...) is deprecated and will be removed in the next release: pass "
                      "allow_nan=True and/or allow_inf=True (NaN and inf are allowed separately).", FutureWarning,
                      stacklevel=3)
        if allow_nan or allow_inf:
            raise ParameterError("allow_non_finite is given with allow_nan/allow_inf.",
                                 "pass allow_nan= and allow_inf= only (allow_non_finite is deprecated).")
        allow_nan = allow_inf = check_bool("allow_non_finite", allow_non_finite)
    return check_bool("allow_nan", allow_nan), check_bool("allow_inf", allow_inf)


def _check_dtype(dtype: Any) -> None:
    if dtype is not None:
        try:
            np.dtype(dtype)
        except TypeError:
            raise ParameterError(f"dtype={dtype!r} is not a numpy dtype.", "pass e.g. dtype='float32'.") from None
        if not _numeric_dtype(dtype):
            raise ParameterError(f"dtype={dtype!r} is not a numeric dtype.", "pass e.g. dtype='float32'.")


def _shard_dtype(data: Any, dtype: Any, feature_cols: Any, id_col: Any, time_col: Any) -> str:
    """The shards' dtype: the one asked for, the array's own, or the common type of the feature columns."""
    if dtype is None:
        if isinstance(data, da.Array):
            dtype = data.dtype
        elif hasattr(data, "dtypes"):
            cols = _feature_cols(data, feature_cols, id_col, time_col)
            dtype = np.result_type(*[np.dtype(str(data[c].dtype)) if str(data[c].dtype) in np.sctypeDict else np.float64
                                     for c in cols])
        else:
            dtype = np.float32
    return np.dtype(dtype).name


def _prepare_array(data: Any, path: Path, tmp: Any, dtype: str, scale: Any, allow_nan: bool,
                   allow_inf: bool) -> ShardedStore:
    """One series from a Dask array: one shard per block of whole rows."""
    arr = data if data.ndim == 2 else data[:, None]
    arr = arr.rechunk({1: -1})  # whole rows in every block
    blocks = arr.to_delayed().ravel()
    tasks = [dask.delayed(_write_block)(b, str(path / f"block-{i:05d}.npy"), dtype, scale)
             for i, b in enumerate(blocks)]
    results = dask.compute(*tasks)
    n_nan, n_inf = sum(r["nan"] for r in results), sum(r["inf"] for r in results)
    _check_finite(n_nan, n_inf, allow_nan, allow_inf)
    records = {r["path"]: r["records"][0] for r in results if r["rows"]}
    store = ShardedStore(list(records), records)
    store.info = {"non_finite": n_nan + n_inf, "nan": n_nan, "inf": n_inf, "shards": len(results),
                  "scale": None if scale is None else tuple(np.asarray(s).tolist() for s in scale)}
    store.finite_checked = store.info["non_finite"] == 0
    write_manifest(path, list(records.values()), kind="array", info=store.info)
    store._tmpdir = tmp  # keep a temporary directory alive as long as the store
    return store


def _prepare_frame(data: Any, path: Path, tmp: Any, id_col: Any, time_col: str | None, feature_cols: Any,
                   target_cols: Any, dtype: str, scale: Any, gaps: str, allow_nan: bool, allow_inf: bool,
                   targets_checked_on_read: bool) -> StoredSeries:
    """Many series from a long Dask frame: shuffled by id, one shard (and target shard) per partition."""
    cols = _feature_cols(data, feature_cols, id_col, time_col)
    # Shuffling by id scrambles rows: number them first, so that each series keeps the frame's row order
    # without time_col, and series come out in order of first appearance, as pandas gives them. The same
    # pass over the partitions checks the ids (none missing, one kind: a shuffle would hash 1 and "1"
    # together, where pandas keeps them apart) and that every row has a time.
    data = _numbered(data, id_col, time_col)
    tcols = list(target_cols) if target_cols is not None else None  # a list (checked above)
    keep = [id_col, _ROW] + ([time_col] if time_col else []) + cols + [c for c in (tcols or []) if c not in cols]
    ddf = data[keep].shuffle(on=id_col)  # every series in one partition
    gaps = check_choice("gaps", gaps, ("error", "split", "accept"))
    tasks = [dask.delayed(_write_partition)(part, i, str(path), id_col, time_col, cols, tcols, dtype, scale, gaps)
             for i, part in enumerate(ddf.to_delayed())]
    results = [r for r in dask.compute(*tasks) if r["path"] is not None]
    if not results:
        raise DataValueError("the dask frame has no rows.", "pass a frame with at least one row.")
    n_nan, n_inf = sum(r["nan"] for r in results), sum(r["inf"] for r in results)
    _check_finite(n_nan, n_inf, allow_nan, allow_inf)
    if not targets_checked_on_read:  # as_stored: make_windows & co. check targets as read, per their allow_nan
        _check_finite(sum(r["nan_targets"] for r in results), sum(r["inf_targets"] for r in results), allow_nan,
                      allow_inf, f"the target columns {tcols}")
    return _stored_series(results, path, tmp, cols, tcols, scale, n_nan, n_inf)


def _stored_series(results: list, path: Path, tmp: Any, cols: list, tcols: list | None, scale: Any, n_nan: int,
                   n_inf: int) -> StoredSeries:
    """The partitions' shards as one StoredSeries (in order of first appearance), with its manifest."""
    import pandas as pd

    meta = pd.concat([r["meta"].assign(path=r["path"], tpath=r["tpath"]) for r in results], ignore_index=True)
    if meta["id"].duplicated().any():  # cannot happen after a shuffle on id_col; guards a broken backend
        raise DataValueError("a series id appeared in two partitions.", "check the id column's dtype.")
    meta = meta.sort_values("first_row", kind="stable").reset_index(drop=True)  # order of first appearance
    records = {str(Path(r["path"]).parent / rec["file"]): rec for r in results for rec in r["records"]}
    store = ShardedStore([Segment(p, int(a), int(b)) for p, a, b in zip(meta["path"], meta["start"], meta["stop"])],
                         records)
    store.finite_checked = n_nan + n_inf == 0  # counted over the feature columns (the targets' count refused above)
    tstore = None
    if tcols:
        tstore = ShardedStore([Segment(p, int(a), int(b)) for p, a, b in zip(meta["tpath"], meta["start"], meta["stop"])],
                              records)
    lengths = (meta["stop"] - meta["start"]).to_numpy(dtype=np.int64)
    stored = StoredSeries(store=store, ids=meta["id"].tolist(), lengths=lengths, feature_names=[str(c) for c in cols],
                          target_store=tstore, target_names=None if tcols is None else [str(c) for c in tcols],
                          info={"non_finite": n_nan + n_inf, "nan": n_nan, "inf": n_inf, "partitions": len(results),
                                "rows": int(lengths.sum()),
                                "scale": None if scale is None else tuple(np.asarray(s).tolist() for s in scale)})
    write_manifest(path, list(records.values()), kind="series", ids=meta["id"].tolist(), lengths=lengths.tolist(),
                   segments=[[Path(p).name, int(a), int(b)] for p, a, b in zip(meta["path"], meta["start"], meta["stop"])],
                   target_segments=None if not tcols else [[Path(p).name, int(a), int(b)] for p, a, b in
                                                           zip(meta["tpath"], meta["start"], meta["stop"])],
                   feature_names=[str(c) for c in cols], target_names=None if tcols is None else [str(c) for c in tcols],
                   info=stored.info)
    store._tmpdir = tmp
    return stored


def _check_finite(n_nan: int, n_inf: int, allow_nan: bool, allow_inf: bool, what: str = "the data") -> None:
    """Refuse the NaN and inf counted while writing (each unless allowed), naming which were found."""
    bad = [(n, name) for n, name, allowed in ((n_nan, "NaN", allow_nan), (n_inf, "inf", allow_inf)) if n and not allowed]
    if not bad:
        return
    names = " and ".join(name for _, name in bad)
    raise DataValueError(
        f"{what} hold(s) {' and '.join(f'{n} {name}' for n, name in bad)} value(s) (NaN/inf).",
        "fill or interpolate them per series before preparing (e.g. ddf.groupby(id).apply(interpolate)), or pass "
        + " and ".join(f"allow_{name.lower()}=True" for _, name in bad)
        + f" and drop the affected windows later ({names} reach the model otherwise).")


def _nan_inf(values: np.ndarray) -> tuple[int, int]:
    """How many NaN and how many +-inf an array holds (none for integer dtypes)."""
    if not np.issubdtype(values.dtype, np.floating):
        return 0, 0
    return int(np.isnan(values).sum()), int(np.isinf(values).sum())


_ROW = "__statebatch_row__"


def _partition_facts(part, id_col: str, time_col: str | None):
    import pandas as pd

    from .timeindex import id_kind

    ids = part[id_col]
    return pd.DataFrame({"rows": [len(part)], "kind": [id_kind(ids)], "missing_ids": [int(ids.isna().sum())],
                         "missing_times": [int(part[time_col].isna().sum()) if time_col is not None else 0]})


def _source_id_kinds(ddf, id_col: str) -> list:
    """The kinds of ids in the pandas frames a Dask frame was made from (``dd.from_pandas``).

    Dask turns object columns into strings by default (``dataframe.convert-string``), so ids ``1`` and
    ``"1"`` of the pandas frame reach the partitions as one id ``"1"``; the frame the expression was built
    from still holds them apart, and is read here (in memory already) so that the Dask path refuses what
    the pandas path refuses. Other sources (Parquet, CSV) hold one type per column."""
    from .timeindex import id_kind

    kinds = []
    try:
        for node in ddf.expr.walk():
            if type(node).__name__ != "FromPandas":
                continue
            frame = getattr(node.frame, "_data", node.frame)
            if id_col in getattr(frame, "columns", ()) and frame[id_col].dtype == object:
                kinds.append(id_kind(frame[id_col]))
    except (AttributeError, TypeError, KeyError):  # another Dask version's expression API: the partitions' kinds only
        return []
    return kinds


def _numbered(ddf, id_col: str | None = None, time_col: str | None = None):
    """The frame with a column of global row numbers (partition order, then row order); with ``id_col``
    the same pass refuses missing or mixed-kind ids and missing time stamps."""
    import pandas as pd

    from .timeindex import check_id_kinds

    if id_col is None:
        sizes = np.asarray(ddf.map_partitions(len).compute(), dtype=np.int64)
    else:
        meta = pd.DataFrame({"rows": pd.Series([], dtype=np.int64), "kind": pd.Series([], dtype=object),
                             "missing_ids": pd.Series([], dtype=np.int64),
                             "missing_times": pd.Series([], dtype=np.int64)})
        facts = ddf.map_partitions(_partition_facts, id_col, time_col, meta=meta).compute()
        sizes = facts["rows"].to_numpy(dtype=np.int64)
        if facts["missing_ids"].sum():
            raise DataValueError(f"the id column {id_col!r} has {int(facts['missing_ids'].sum())} missing series ids.",
                                 "fill or drop those rows first.")
        if facts["missing_times"].sum():
            raise DataValueError(f"the time column {time_col!r} has {int(facts['missing_times'].sum())} missing time "
                                 "stamps, which cannot be placed in time.", "drop those rows or fill their times first.")
        check_id_kinds(None, f"the id column {id_col!r}",
                       kinds=facts["kind"][facts["rows"] > 0].tolist() + _source_id_kinds(ddf, id_col))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])

    def number(part, partition_info=None):
        first = int(starts[partition_info["number"]]) if partition_info else 0
        return part.assign(**{_ROW: np.arange(first, first + len(part), dtype=np.int64)})

    meta = ddf._meta.assign(**{_ROW: np.array([], dtype=np.int64)})
    return ddf.map_partitions(number, meta=meta)


def as_stored(data: Any, *, id_col=None, time_col=None, feature_cols=None, target_cols=None, dtype=None,
              gaps: str = "error"):
    """Prepare a Dask collection into a temporary store (what ``make_windows`` & co. do with Dask input)."""
    return prepare(data, None, id_col=id_col, time_col=time_col, feature_cols=feature_cols, target_cols=target_cols,
                   dtype=dtype, gaps=gaps, _targets_checked_on_read=True)

