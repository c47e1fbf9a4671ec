"""Windows for ``torch.utils.data``: :class:`WindowDataset` and :class:`WindowBatchSampler`.

Plain windows are served as ``(x, y)`` tensors, forecasting windows (``make_windows(..., known_cols=,
static_cols=, min_timesteps=, scale=, missing=, ...)``) as :class:`~statebatch.forecast.ForecastBatch`
named tuples of tensors; either way a batch is one gather that ``default_collate`` hands on as it is."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..._args import check_int
from ...errors import ParameterError
from ...materialise.forecast import ForecastBatch
from ...results.windows import Windows
from .buckets import _LazyItems
from .checkpoints import _crc, _ResumableBatches
from .tensors import _positions, forecast_batch, to_tensor


class WindowDataset(torch.utils.data.Dataset):
    """Windows from :func:`~statebatch.make_windows` as a map-style dataset: item ``i`` is window ``i``
    as ``(x,)`` or ``(x, y)`` tensors, gathered from the zero-copy strided view.

    Forecasting windows (any of ``known_cols``, ``static_cols``, ``min_timesteps``, ``scale``, ``missing``,
    ``lags``, ``time_features``) give a :class:`~statebatch.forecast.ForecastBatch` named tuple of tensors
    instead, the type :func:`forecast_batch` returns: item ``i`` without the batch axis, a loader's batch
    with it (``past (B, T, F)``, ``future``, ``static``, ``y``, ``mask``, ``scale``, ``past_observed``,
    ``y_observed``); a field the windows do not have is ``None`` in items and batches alike.

    ``DataLoader`` does the batching and shuffling (the windows' own ``batch_size``/``shuffle`` are not
    used; :class:`WindowBatchSampler` hands it their plan); a batch of indices is fetched with one gather
    (``__getitems__``), which ``default_collate`` passes on without splitting it into windows.

    Examples
    --------
    >>> import numpy as np, pandas as pd, statebatch as sb
    >>> from torch.utils.data import DataLoader
    >>> df = pd.DataFrame({"id": np.repeat(["a", "b"], 6), "t": np.tile(np.arange(6), 2),
    ...                    "y": np.arange(12.0), "k": np.ones(12)})
    >>> w = sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k"])
    >>> b = next(iter(DataLoader(WindowDataset(w), batch_size=4, shuffle=True)))
    >>> type(b).__name__, tuple(b.past.shape), tuple(b.future.shape), tuple(b.y.shape), b.mask
    ('ForecastBatch', (4, 3, 2), (4, 1, 1), (4, 1, 1), None)
    """

    def __init__(self, windows: Windows):
        if not isinstance(windows, Windows):
            raise ParameterError(f"WindowDataset needs statebatch Windows, got {type(windows).__name__}.",
                                 "build them with statebatch.make_windows(...).")
        self.windows = windows
        self._n = int(windows.n_windows)  # fixed for the windows' lifetime; read once per batch otherwise
        self._forecast = getattr(windows, "forecast", None) is not None  # batches are mappings, not (x, y)
        # in memory: the strided views and every window's start row, made once, so that a batch of indices is
        # one small index and one gather per table (out of core: take() reads, and NaN/inf are checked per batch)
        self._tables = None if self._forecast else windows._tables()

    def __len__(self) -> int:
        return self._n

    def __getstate__(self) -> dict[str, Any]:  # the tables' views are made again in a worker, not copied there
        return {**self.__dict__, "_tables": None, "_remake": self._tables is not None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        remake = state.pop("_remake", False)
        self.__dict__.update(state)
        if remake:
            self._tables = self.windows._tables()

    def __getitem__(self, i: int) -> Any:
        i = check_int("window index", i)
        idx = _positions([i], len(self), "window")
        if self._forecast:
            return ForecastBatch(*(None if t is None else t[0] for t in self._forecast_take(idx)))
        return tuple(to_tensor(a[0]) for a in self._take(idx))

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Windows ``indices`` with one gather (``DataLoader`` calls this with each batch of indices).

        The batch comes back as a list of per-window items (``(x, y)`` tuples, or ``ForecastBatch`` named
        tuples) made only when read; its items are of a type registered with ``default_collate``, which then
        hands on the gathered tensors (``[x, y]``, or one ``ForecastBatch``) as they are instead of splitting
        them into windows and stacking them again (the same values, order and types as stacking). Any other
        collate reads the items as usual."""
        idx = _positions(indices, self._n, "window")
        if self._forecast:
            return _GatheredForecast(self._forecast_take(idx))
        if self._tables is not None:  # new arrays: shared with the tensors, never with the user's data
            arrays = self._tables.take(idx)
            return _GatheredWindows(tuple(torch.from_numpy(a) for a in arrays), arrays)
        return _GatheredWindows(tuple(to_tensor(a) for a in self._take(idx)))

    def _take(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        """Windows ``idx`` gathered by the windows, NaN/inf checked as their own batches are (out-of-core data)."""
        return self.windows._finite(self.windows.take(idx), f"of windows {_shown(idx)}")

    def _forecast_take(self, idx: np.ndarray) -> ForecastBatch:
        """Forecasting windows ``idx`` (checked by ``_positions``) as tensors: one gather per table."""
        return forecast_batch(self.windows._forecast_take(idx))


def _shown(idx: np.ndarray) -> str:
    """A few window indices for a message."""
    return ", ".join(map(str, idx[:5].tolist())) + (", ..." if len(idx) > 5 else "")


class _WindowItem(tuple):
    """One window ``(x,)`` or ``(x, y)`` of a gathered batch (a plain tuple of tensors to every reader)."""

    __slots__ = ()

    def __reduce__(self):  # pickled (by a worker process) as a plain tuple
        return tuple, (tuple(self),)


class _GatheredWindows(_LazyItems):
    """The windows of one batch, gathered; ``gathered`` = the batch tensors ``(X, y)``. An item is made when it is
    read (``default_collate`` reads the first to pick its collate function, then uses ``gathered``)."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], arrays: tuple[np.ndarray, ...] | None = None):
        super().__init__()
        self.gathered = tensors
        self._arrays = arrays  # the tensors' memory as numpy arrays, where the caller has them
        self._n = int(tensors[0].shape[0])

    def _item(self, j: int) -> "_WindowItem":
        # numpy views of the tensors' memory: a numpy index and torch.from_numpy are cheaper than indexing a
        # tensor (default_collate reads one item per batch, a custom collate every item)
        arrays = self._arrays if self._arrays is not None else tuple(t.numpy() for t in self.gathered)
        return _WindowItem(torch.from_numpy(a[j]) if a.ndim > 1 else torch.from_numpy(a[j:j + 1]).view(())
                           for a in arrays)

    def _make_items(self):
        return (_WindowItem(a[j] for a in self.gathered) for j in range(self._n))

    def __getitem__(self, k):
        if not self._filled and isinstance(k, (int, np.integer)) and -self._n <= k < self._n:
            return self._item(int(k) % self._n)
        return list.__getitem__(self._fill(), k)


def _collate_windows(batch: Sequence, *, collate_fn_map: dict | None = None) -> Any:
    """``default_collate`` of windows: the gathered tensors as they are, as a list like stacking gives."""
    if isinstance(batch, _GatheredWindows) and batch._unchanged():
        return list(batch.gathered)
    from torch.utils.data._utils.collate import collate

    return collate([tuple(it) for it in batch], collate_fn_map=collate_fn_map)


class _GatheredForecast(_LazyItems):
    """The forecasting windows of one batch, gathered; ``gathered`` = the batch's ``ForecastBatch`` of tensors.
    An item (one window, a ``ForecastBatch`` without the batch axis) is made when it is read."""

    def __init__(self, batch: ForecastBatch):  # an empty list until filled (list.__new__ made it)
        self.gathered = batch
        self._n = len(batch.y)

    def _item(self, j: int) -> ForecastBatch:
        return ForecastBatch._make([None if t is None else t[j] for t in self.gathered])

    def _make_items(self) -> Iterator[ForecastBatch]:
        return (self._item(j) for j in range(self._n))

    def __getitem__(self, k):
        if not self._filled and isinstance(k, (int, np.integer)) and -self._n <= k < self._n:
            return self._item(int(k) % self._n)
        return list.__getitem__(self._fill(), k)

    def __reduce_ex__(self, protocol):  # pickled (e.g. by a worker process) as a plain list of named tuples
        return list, (list(self._fill()),)


def _collate_forecast(batch: Sequence, *, collate_fn_map: dict | None = None) -> ForecastBatch:
    """``default_collate`` of forecasting windows: the gathered batch as it is; other lists of ``ForecastBatch``
    items (e.g. ``[ds[i] for i in ...]``) stacked field by field, a field absent from every item ``None``."""
    if isinstance(batch, _GatheredForecast) and batch._unchanged():
        return batch.gathered
    from torch.utils.data._utils.collate import collate, default_collate_fn_map

    fields: list[Any] = []
    for name, values in zip(ForecastBatch._fields, zip(*batch)):
        absent = [v is None for v in values]
        if all(absent):
            fields.append(None)
        elif any(absent):
            raise ParameterError(f"the forecasting windows of this batch disagree on {name!r}: some have it, some "
                                 "do not.", "batch windows of one make_windows(...) call together.")
        else:
            try:
                fields.append(collate(list(values), collate_fn_map=collate_fn_map or default_collate_fn_map))
            except (RuntimeError, TypeError) as e:  # tensors of other shapes, values torch cannot stack
                raise ParameterError(f"the forecasting windows of this batch cannot be stacked on {name!r} ({e}).",
                                     "batch windows of one make_windows(...) call together.") from None
    return ForecastBatch(*fields)


def _register_window_collate() -> None:
    # torch documents extending default_collate by adding a type to default_collate_fn_map; only our own item
    # types are added, so no other collation changes.
    from torch.utils.data._utils.collate import default_collate_fn_map

    default_collate_fn_map.setdefault(_WindowItem, _collate_windows)
    default_collate_fn_map.setdefault(ForecastBatch, _collate_forecast)


_register_window_collate()


class WindowBatchSampler(_ResumableBatches, torch.utils.data.Sampler):
    """The windows' own batches of indices for ``DataLoader(WindowDataset(w), batch_sampler=...)``.

    Batch ``k`` of epoch ``e`` holds the windows of ``w.batch(k, e)``, in that order (the plan of
    :func:`~statebatch.make_windows`: its ``batch_size``, ``shuffle``, ``seed``, ``remainder``), handed
    over as one index array, so the loader does no work per window. Call ``set_epoch(epoch)`` at the
    start of every epoch to reshuffle (the ``DistributedSampler`` convention); ``state_dict`` /
    ``load_state_dict`` resume in the middle of an epoch.
    """

    def __init__(self, windows: Windows):
        if not isinstance(windows, Windows):
            raise ParameterError(f"WindowBatchSampler needs statebatch Windows, got {type(windows).__name__}.",
                                 "build them with statebatch.make_windows(..., batch_size=..., shuffle=..., seed=...).")
        self.windows = windows
        self.epoch = 0

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """The batches of ``epoch`` (default: the current one), as index arrays."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        plan = self.windows.plan(epoch)
        out = []
        for k in range(plan.n_batches):
            idx = plan.batch_indices(k)
            out.append(np.arange(idx.start, idx.stop, dtype=np.int64) if isinstance(idx, slice) else idx)
        return out

    _epoch_batches = batches

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._served(self.batches(), lambda b: b)

    def __len__(self) -> int:
        return self.windows.plan(self.epoch).n_batches

    def _identity(self) -> dict[str, Any]:
        w = self.windows
        return {"n_windows": int(w.n_windows), "starts_crc32": _crc(w.starts), "batch_size": int(w.batch_size),
                "shuffle": bool(w.shuffle), "seed": int(w.seed), "remainder": str(w.remainder)}

    def __repr__(self) -> str:
        return f"WindowBatchSampler({len(self)} batches of up to {self.windows.batch_size}, epoch={self.epoch})"
