"""Recurrent state across batches: :class:`StateCarrier`, :func:`carry`, :func:`detach_state`."""

from __future__ import annotations

import contextlib
import numbers
from typing import Any

import numpy as np
import torch

from ..._args import check_int
from ...errors import BatchIndexError, BatchSizeError, ParameterError, ShapeError
from ...results.schedule import ValidationSchedule
from .checkpoints import _keys_of
from .lanes import LaneLoader
from .tensors import _flat_integers


def _map_state(state: Any, fn) -> Any:
    """Apply ``fn`` to every tensor of a (nested) state: tensors, tuples, lists, named tuples, dicts."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: _map_state(v, fn) for k, v in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_map_state(s, fn) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_map_state(s, fn) for s in state)
    raise ParameterError(f"a recurrent state holds a {type(state).__name__}; expected tensors, possibly nested in "
                         "tuples, lists or dicts.", "pass the state the model returned (e.g. h, or (h, c)).")


def _checked_state(state: Any, batch_dim: int, what: str) -> Any:
    """A (nested) state whose tensors all have one lane count on ``batch_dim``; errors name ``what``."""
    lanes: set[int] = set()

    def one(t: torch.Tensor) -> torch.Tensor:
        if t.ndim == 0 or not -t.ndim <= batch_dim < t.ndim:
            raise ShapeError(f"{what} holds a tensor of shape {tuple(t.shape)} with no axis {batch_dim} for lanes.",
                             "pass batch_dim=1 for nn.RNN/GRU/LSTM states, 0 for (batch, hidden) cell states.")
        lanes.add(int(t.shape[batch_dim]))
        return t

    _map_state(state, one)
    if len(lanes) > 1:
        raise BatchSizeError(f"{what} holds tensors with different lane counts {sorted(lanes)} on axis {batch_dim}.",
                             "every tensor of a recurrent state needs one row per lane; pass the state the model "
                             "returned.")
    return state


def detach_state(state: Any) -> Any:
    """The state cut from the graph of the batches before it (``repackage_hidden``), nested or not.

    Examples
    --------
    >>> import torch
    >>> h = torch.ones(1, 2, 3, requires_grad=True) * 2
    >>> h2, c2 = detach_state((h, h))
    >>> h2.requires_grad, h.requires_grad, bool((h2 == h).all())
    (False, True, True)
    """
    return _map_state(state, lambda t: t.detach())


def _reset_mask(reset: Any) -> torch.Tensor:
    """``reset`` as a 1-D bool tensor (one flag per lane), else a ParameterError saying what to pass."""
    fix = "pass the reset tensor the LaneLoader yields with each batch (a 1-D bool mask, one flag per lane)."
    if isinstance(reset, torch.Tensor):
        r = reset
    else:
        try:
            arr = np.asarray(reset)
        except (ValueError, TypeError) as e:
            raise ParameterError(f"reset is not a mask ({type(reset).__name__}: {e}).", fix) from None
        if arr.dtype != bool:
            raise ParameterError(f"reset must be a 1-D boolean mask with one flag per lane, got dtype {arr.dtype} and "
                                 f"shape {arr.shape}.", fix + " For lane indices use StateCarrier.zero(rows).")
        r = torch.from_numpy(np.array(arr, dtype=bool))
    if r.ndim != 1 or r.dtype != torch.bool:
        raise ParameterError(f"reset must be a 1-D boolean mask with one flag per lane, got dtype {r.dtype} and shape "
                             f"{tuple(r.shape)}.", fix)
    return r


def _check_rows(rows: Any, lanes: int | None) -> np.ndarray | None:
    """Lane indices for :meth:`StateCarrier.zero`: ``None`` (every lane), or integers in ``0 .. lanes - 1``.

    Negative indices are refused rather than counted from the end: a lane is a position in the batch,
    and ``-1`` is far more often an off-by-one than "the last lane". Bools and floats are refused too
    (a mask or a float index would silently pick other lanes)."""
    if rows is None:
        return None
    fix = "pass lane indices 0 .. batch_size - 1 (e.g. rows=[0, 3]), or rows=None for every lane; for a bool mask " \
          "use np.flatnonzero(mask)."
    if isinstance(rows, (numbers.Integral, np.integer)) and not isinstance(rows, (bool, np.bool_)):
        rows = [rows]  # one lane
    arr = _flat_integers(rows, "rows (lane indices)", fix)
    if arr.size and arr.min() < 0:
        raise ParameterError(f"rows {arr[arr < 0][:5].tolist()} are negative: lanes count from 0.", fix)
    if lanes is not None and arr.size and arr.max() >= lanes:
        raise BatchIndexError(f"rows {arr[arr >= lanes][:5].tolist()} are outside 0..{lanes - 1} (the state has "
                              f"{lanes} lanes).", fix)
    return arr


def carry(state: Any, reset: Any, *, batch_dim: int = 1) -> Any:
    """Carry a recurrent state into the next batch: detach it and zero the rows (lanes) that reset.

    Parameters
    ----------
    state : tensor or nested tuple/list/dict of tensors, or None
        What the model returned: a GRU's ``h`` or an LSTM's ``(h, c)``, each ``(layers * directions,
        batch_size, hidden)`` for ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (also with ``batch_first=True``);
        custom cells often keep ``(batch_size, hidden)``: pass ``batch_dim=0``. ``None`` (zero state)
        stays ``None``.
    reset : bool tensor or array ``(batch_size,)``, as yielded by :class:`LaneLoader`.
    batch_dim : int
        The axis of every state tensor that indexes lanes.

    Returns
    -------
    The state with the same structure, detached; rows ``reset`` are zero. The input is not modified.

    Examples
    --------
    >>> import torch
    >>> h = torch.ones(1, 3, 2)  # (layers, lanes, hidden), as nn.GRU returns it
    >>> carry(h, torch.tensor([False, True, False]))[0]
    tensor([[1., 1.],
            [0., 0.],
            [1., 1.]])
    >>> carry(None, torch.tensor([True, True, True])) is None  # the zero state stays the model's own zeros
    True
    """
    r = _reset_mask(reset)
    batch_dim = check_int("batch_dim", batch_dim)

    def one(t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        if t.ndim == 0 or not -t.ndim <= batch_dim < t.ndim:
            raise ShapeError(f"a state tensor of shape {tuple(t.shape)} has no axis {batch_dim} to hold lanes.",
                             "pass batch_dim=1 for nn.RNN/GRU/LSTM states (layers * directions, batch, hidden), "
                             "batch_dim=0 for (batch, hidden).")
        if t.shape[batch_dim] != len(r):
            raise BatchSizeError(
                f"a state tensor of shape {tuple(t.shape)} has {t.shape[batch_dim]} rows on axis {batch_dim} but the "
                f"batch has {len(r)} lanes.",
                "pass batch_dim=1 for nn.RNN/GRU/LSTM states (layers * directions, batch, hidden) and batch_dim=0 "
                "for (batch, hidden) cell states; the model's state must have one row per lane.")
        if not bool(r.any()):
            return t
        shape = [1] * t.ndim
        shape[batch_dim] = len(r)
        keep = (~r).to(t.device).view(shape)
        return torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))

    return _map_state(state, one)


class StateCarrier:
    """Carries a model's recurrent state across the batches of a :class:`LaneLoader` (truncated BPTT).

    A :class:`~statebatch.schedule.StateHandle` (``zero``, ``snapshot``, ``restore``) over the state::

        carrier = StateCarrier()
        for x, y, w, reset in loader:
            out, h = model(x, carrier(reset))   # detached, reset rows zeroed (None = zeros at first)
            carrier.update(h)
            ...
        with carrier.validation(val_loader):     # training state saved, validation from zero
            for x, y, w, reset in val_loader:
                out, h = model(x, carrier(reset)); carrier.update(h)
        # training state restored here

    Parameters
    ----------
    batch_dim : int
        The lanes axis of every state tensor: 1 for ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (their state is
        ``(layers * directions, batch, hidden)`` even with ``batch_first=True``), 0 for ``(batch,
        hidden)`` cell states.
    """

    def __init__(self, *, batch_dim: int = 1):
        self.batch_dim = check_int("batch_dim", batch_dim)
        self.state: Any = None

    def __call__(self, reset: Any) -> Any:
        """The state to run the next batch from: detached, rows ``reset`` zeroed (``None`` = zeros)."""
        r = _reset_mask(reset)
        if self.state is not None and bool(r.all()):
            self.state = None  # every lane starts from zero: the model's own zero state
        self.state = carry(self.state, r, batch_dim=self.batch_dim)
        return self.state

    def update(self, state: Any) -> None:
        """Keep the state the model returned for the next batch (detached: the graph is not kept)."""
        self.state = detach_state(_checked_state(state, self.batch_dim, "the state given to update()"))

    # -- StateHandle
    def zero(self, rows: Any = None) -> None:
        """Zero the state of lanes ``rows`` (integers ``0 .. batch_size - 1``; ``None``: every lane)."""
        rows = _check_rows(rows, None if self.state is None else self._lanes())
        if rows is None or self.state is None:
            self.state = None
            return
        mask = np.zeros(self._lanes(), dtype=bool)
        mask[rows] = True
        self.state = carry(self.state, mask, batch_dim=self.batch_dim)

    def _lanes(self) -> int:
        found: list[int] = []
        _map_state(self.state, lambda t: found.append(int(t.shape[self.batch_dim])))
        return found[0]

    def snapshot(self) -> tuple:
        # a tuple even for the zero state (None), so that the schedule always restores it
        return ("state", _map_state(self.state, lambda t: t.detach().clone()))

    def restore(self, snapshot: tuple) -> None:
        if not (isinstance(snapshot, tuple) and len(snapshot) == 2 and snapshot[0] == "state"):
            raise ParameterError(f"restore() takes what snapshot() returned, got {type(snapshot).__name__}.",
                                 "pass carrier.snapshot()'s value; to load a checkpoint use load_state_dict().")
        self.state = _checked_state(snapshot[1], self.batch_dim, "the snapshot")

    # -- checkpoints (the torchdata StatefulDataLoader convention)
    def state_dict(self) -> dict[str, Any]:
        """``{"batch_dim", "state"}``: the lane states (cloned tensors, nested as the model returned them;
        ``None`` = every lane at zero). With :meth:`LaneLoader.state_dict` this is all the reset logic
        needs: the loader's next reset mask is a function of its epoch and batch, applied to this state."""
        return {"batch_dim": self.batch_dim, "state": _map_state(self.state, lambda t: t.detach().clone())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict` (checked: tensors only, one lane count, the same ``batch_dim``)."""
        fix = "pass what StateCarrier.state_dict() returned (e.g. from torch.load of the checkpoint)."
        if not isinstance(state, dict) or set(state) != {"batch_dim", "state"}:
            raise ParameterError(f"a StateCarrier state is a dict with 'batch_dim' and 'state', got "
                                 f"{type(state).__name__}{_keys_of(state)}.",
                                 fix)
        if state["batch_dim"] != self.batch_dim:
            raise ParameterError(f"the state was saved with batch_dim={state['batch_dim']!r}, this carrier has "
                                 f"batch_dim={self.batch_dim}.", f"build the carrier with StateCarrier(batch_dim="
                                 f"{state['batch_dim']!r}) as the saved run did.")
        checked = _checked_state(state["state"], self.batch_dim, "the loaded state")
        self.state = _map_state(checked, lambda t: t.detach().clone())

    @contextlib.contextmanager
    def validation(self, data: Any = None):
        """Keep validation (or inference) state apart from training state, as Keras' callback does.

        Inside the block the carrier starts from zero, or from the training state when ``data``
        continues the training lanes (a :class:`LaneLoader` or :class:`~statebatch.Arranged` from
        :meth:`Arranged.split`); on leaving, the training state is put back.
        """
        if data is None:
            saved = self.snapshot()
            self.state = None
            try:
                yield self
            finally:
                self.restore(saved)
            return
        sched = ValidationSchedule(data.arranged if isinstance(data, LaneLoader) else data)
        sched.begin(self)
        try:
            yield self
        finally:
            sched.end(self)

    def __repr__(self) -> str:
        shapes = []
        _map_state(self.state, lambda t: shapes.append(tuple(t.shape)))
        return f"StateCarrier(batch_dim={self.batch_dim}, state={shapes if shapes else 'zero'})"
