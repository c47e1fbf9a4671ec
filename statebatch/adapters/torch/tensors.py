"""Arrays to tensors: :func:`to_tensor` (shared where statebatch made the array, copied where it is
read-only), :func:`forecast_batch`, and the checks of devices, pinning and item indices the loaders share."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ...errors import BatchIndexError, DTypeError, ParameterError, StatebatchWarning
from ...materialise.forecast import FORECAST_KEYS, ForecastBatch


def to_tensor(a: Any) -> torch.Tensor:
    """A numpy array as a CPU tensor: shared when it is writable (statebatch made it for this batch),
    copied when it is read-only (a view of the user's data or of a cached epoch), so that
    ``torch.from_numpy`` does not warn and in-place tensor ops never reach the user's data.

    A tensor is returned as it is. Anything else is read with ``np.asarray``; dtypes torch has no
    tensor type for (object, strings, datetimes, ``longdouble``) and ragged lists raise
    :class:`~statebatch.DTypeError`.

    Examples
    --------
    >>> import numpy as np
    >>> mine = np.arange(3.0)
    >>> t = to_tensor(mine)  # writable: shared
    >>> t[0] = 9.0; mine
    array([9., 1., 2.])
    >>> users = np.arange(3.0); users.flags.writeable = False
    >>> t = to_tensor(users)  # read-only: copied, so the user's array never changes
    >>> t[0] = 9.0; users
    array([0., 1., 2.])
    """
    if isinstance(a, torch.Tensor):
        return a
    a = _as_array(a, "to_tensor's input")
    if not a.flags.writeable or not (a.flags.c_contiguous or a.flags.f_contiguous) or a.dtype.byteorder == ">":
        a = np.array(a, dtype=a.dtype.newbyteorder("=") if a.dtype.byteorder == ">" else a.dtype, order="C")
    return torch.from_numpy(a)


def _as_array(a: Any, what: str) -> np.ndarray:
    """``np.asarray(a)`` of a dtype torch can hold, else a DTypeError that says what to pass."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:  # ragged nested lists, objects numpy cannot read
        raise DTypeError(f"{what} is not an array ({type(a).__name__}: {e}).",
                         "pass a numpy array (or list of numbers) of one shape, or a torch tensor.") from None
    if not _torch_dtype_ok(arr.dtype):
        raise DTypeError(f"{what} has dtype {arr.dtype}, which torch has no tensor type for.",
                         "convert it to numbers first, e.g. np.asarray(a, dtype=np.float32) (strings: encode them "
                         "as integer codes).")
    return arr


def _torch_dtype_ok(dtype: np.dtype) -> bool:
    return (dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize <= 8)
            or (dtype.kind == "c" and dtype.itemsize <= 16))


def forecast_batch(batch: Mapping[str, Any]) -> Any:
    """A forecasting batch (the mapping of :meth:`Windows.batch` / ``arrays()`` with forecasting inputs)
    as a :class:`statebatch.forecast.ForecastBatch` named tuple of tensors (``None`` where a key is
    absent): ``past``, ``future``, ``static``, ``y``, ``mask``, ``scale``, ``past_observed``,
    ``y_observed``.

    Examples
    --------
    >>> import numpy as np
    >>> batch = {"past": np.zeros((2, 4, 3), np.float32), "future": np.zeros((2, 1, 1), np.float32),
    ...          "static": np.zeros((2, 1), np.float32), "y": np.zeros((2, 1, 1), np.float32)}
    >>> b = forecast_batch(batch)
    >>> tuple(b.past.shape), tuple(b.y.shape), b.mask is None
    ((2, 4, 3), (2, 1, 1), True)
    """
    if not isinstance(batch, Mapping) or not batch.keys() >= _NEEDED:
        raise ParameterError(f"forecast_batch needs a forecasting batch (a mapping with past/future/static/y), got "
                             f"{type(batch).__name__}.", "pass windows.batch(k) of make_windows(..., known_cols=..., ...).")
    if not batch.keys() <= _KNOWN:
        extra = [k for k in batch if k not in _KNOWN]
        raise ParameterError(f"forecast_batch got unknown keys {extra}.", f"pass a batch with keys among {FORECAST_KEYS}.")
    # called once per batch on every torch path: one pass over the fields, no keyword arguments
    return ForecastBatch._make([to_tensor(batch[k]) if k in batch else None for k in FORECAST_KEYS])


_NEEDED = frozenset(("past", "future", "static", "y"))
_KNOWN = frozenset(FORECAST_KEYS)


def _pin_ok(pin_memory: bool) -> bool:
    """Pinning needs an accelerator; without one it is skipped with a warning, as DataLoader does."""
    if not pin_memory:
        return False
    if torch.cuda.is_available():
        return True
    warnings.warn("pin_memory=True but no CUDA device is available: batches are not pinned.",
                  StatebatchWarning, stacklevel=3)
    return False


def _check_device(device: Any) -> torch.device | None:
    """A device tensors can be moved to on this machine, checked now rather than at the first batch."""
    if device is None:
        return None
    fix = "pass device='cpu', or a device this machine has (torch.cuda.is_available(), torch.cuda.device_count())."
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, numbers.Integral)):
        raise ParameterError(f"device={device!r} ({type(device).__name__}) is not a torch device.", fix)
    try:
        dev = torch.device(int(device) if isinstance(device, numbers.Integral) else device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ParameterError(f"device={device!r} is not a torch device ({e}).",
                             "pass e.g. device='cpu', 'cuda' or torch.device('cuda:0').") from None
    if dev.type == "meta":  # meta tensors hold no values: every batch would silently be lost
        raise ParameterError("device='meta' holds no data: every batch would arrive without its values.", fix)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"device={device!r} but no CUDA device is available (torch.cuda.is_available() is "
                                 "False: no GPU, or torch built without CUDA).", fix)
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ParameterError(f"device={device!r} but this machine has {count} CUDA device(s), "
                                 f"cuda:0..cuda:{count - 1}.", fix)
    try:  # other accelerators (mps, xpu, ...): one tiny move says whether it works here
        torch.zeros(1).to(dev)
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError or AssertionError depending on the backend
        raise ParameterError(f"device={device!r} cannot be used on this machine ({type(e).__name__}: {e}).",
                             fix) from None
    return dev


def _flat_integers(idx: Any, what: str, fix: str) -> np.ndarray:
    """``idx`` as a flat int64 array, else a ParameterError naming ``what`` and ``fix``.

    Bools and floats are refused (a mask or a float index would silently pick other items), and so are
    strings, sets and dicts (whose order or meaning as indices is not a position)."""
    if isinstance(idx, torch.Tensor):
        idx = idx.detach().cpu().numpy()
    if isinstance(idx, (str, bytes, dict, set, frozenset)) or not (hasattr(idx, "__len__") or hasattr(idx, "__iter__")):
        raise ParameterError(f"{what} must be a list of integers, got {type(idx).__name__}.", fix)
    try:
        arr = np.asarray(idx if isinstance(idx, (np.ndarray, list)) else list(idx))
        if arr.dtype == object:  # e.g. a list mixing ints and lists: not a flat list of integers
            raise ValueError("mixed or nested entries")
    except (ValueError, TypeError) as e:
        raise ParameterError(f"{what} are not a flat list of integers ({e}).", fix) from None
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        raise ParameterError(f"{what} must be integers, got dtype {arr.dtype}.", fix)
    if arr.ndim > 1:
        raise ParameterError(f"{what} must be a flat list, got shape {arr.shape}.", fix)
    return arr.astype(np.int64).reshape(-1)


def _positions(idx: Any, n: int, what: str) -> np.ndarray:
    """Item indices of a map-style dataset of ``n`` items (negative ones count from the end)."""
    # the common cases first, checked with two reductions: a batch sampler's index array, a list of ints
    try:
        arr = np.asarray(idx) if type(idx) is list else idx
    except (ValueError, TypeError):  # ragged nested lists: the checks below say what is wrong
        arr = None
    if isinstance(arr, np.ndarray) and arr.ndim == 1 and arr.dtype.kind in "iu" and arr.size:
        if 0 <= arr.min() and arr.max() < n:
            return arr.astype(np.int64, copy=False)
    idx = _flat_integers(idx, f"{what} indices", f"pass a flat list of integer {what} indices 0 .. len(dataset) - 1.")
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise BatchIndexError(f"{what} indices {idx[(idx < -n) | (idx >= n)][:5].tolist()} are outside 0..{n - 1}.",
                              f"ask for {what}s 0 .. len(dataset) - 1.")
    return idx % n if n and idx.size and idx.min() < 0 else idx
