"""Stateful arrangement: series into *lanes* so that row i of batch k+1 continues row i of batch k.

A stateful Keras RNN keeps ``batch_size`` parallel states; the state of row ``i`` at the end of
batch ``k`` is the initial state of row ``i`` in batch ``k+1``. :func:`arrange_stateful` computes a
small integer **plan** (which series and step range sits in each lane at each batch, where lanes
must reset), then materialises X, y and sample weights with one gather of whole chunks.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ._series import as_series
from .errors import LengthMismatchError, ParameterError, RemainderError, ShapeError
from .windows import _check_int, strided_windows


@dataclass(frozen=True)
class LanePlan:
    """Where every chunk goes. All arrays have shape ``(n_batches, batch_size)``.

    Attributes
    ----------
    series : int
        Index of the series in lane ``i`` at batch ``k``; ``-1`` for an idle (fully padded) slot.
    step : int
        First step (within that series) of the chunk.
    valid : int
        Real steps in the chunk (``timesteps`` for a full chunk, fewer for a series' last chunk).
    resets : bool
        Lane ``i`` starts a new series at batch ``k``: its state must be zeroed before the batch.
    """

    series: np.ndarray
    step: np.ndarray
    valid: np.ndarray
    resets: np.ndarray

    @property
    def n_batches(self) -> int:
        return int(self.series.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.series.shape[1])

    def subset(self, k0: int, k1: int) -> "LanePlan":
        return LanePlan(self.series[k0:k1], self.step[k0:k1], self.valid[k0:k1], self.resets[k0:k1].copy())


def _balanced_lane_plan(usable: int, timesteps: int, batch_size: int, chunks: int) -> LanePlan:
    """One series cut into ``batch_size`` contiguous lanes whose lengths differ by at most a chunk."""
    q, r = divmod(chunks, batch_size)
    per_lane = np.full(batch_size, q, dtype=np.int64)
    per_lane[:r] += 1
    first_chunk = np.concatenate([[0], np.cumsum(per_lane)[:-1]])
    nb = int(per_lane.max()) if chunks else 0
    k = np.arange(nb)[:, None]
    present = k < per_lane[None, :]
    step = (first_chunk[None, :] + k) * timesteps
    valid = np.where(present, np.clip(usable - step, 0, timesteps), 0)
    series = np.where(present & (valid > 0), 0, -1)
    resets = np.zeros((nb, batch_size), dtype=bool)
    if nb:
        resets[0] = per_lane > 0
    return LanePlan(series.astype(np.int64), np.where(series >= 0, step, 0).astype(np.int64),
                    valid.astype(np.int64), resets)


def pack_lanes(chunks: Sequence[int], batch_size: int) -> list[list[int]]:
    """Assign series (by chunk count) to lanes, longest first to the least-loaded lane (LPT).

    Returns the series indices of each lane in the order they run. The number of batches is the
    largest lane load, at most 4/3 of the optimum and close to ``ceil(sum(chunks) / batch_size)``
    when there are many series.
    """
    chunks = np.asarray(chunks, dtype=np.int64)
    order = np.argsort(-chunks, kind="stable")
    heap = [(0, lane) for lane in range(batch_size)]
    lanes: list[list[int]] = [[] for _ in range(batch_size)]
    for s in order:
        if chunks[s] <= 0:
            continue
        load, lane = heapq.heappop(heap)
        lanes[lane].append(int(s))
        heapq.heappush(heap, (load + int(chunks[s]), lane))
    return lanes


def _packed_lane_plan(usable: np.ndarray, chunks: np.ndarray, timesteps: int, batch_size: int) -> LanePlan:
    lanes = pack_lanes(chunks, batch_size)
    seq = np.concatenate([np.asarray(lane, dtype=np.int64) for lane in lanes])  # series, lane by lane
    lane_of = np.repeat(np.arange(batch_size), [len(lane) for lane in lanes])
    c = chunks[seq].astype(np.int64)
    ends = np.cumsum(c)
    starts = ends - c  # exclusive cumulative chunk count over all lanes
    first_in_lane = np.searchsorted(lane_of, np.arange(batch_size))  # position of each lane's first series
    lane_offset = starts[np.minimum(first_in_lane, len(starts) - 1)]
    start_batch = starts - lane_offset[lane_of]  # the batch where each series starts in its lane
    loads = np.bincount(lane_of, weights=c, minlength=batch_size).astype(np.int64)
    nb = int(loads.max()) if len(loads) else 0
    # one entry per chunk: which series, which lane, which batch, which chunk of the series
    total = int(c.sum())
    chunk_series = np.repeat(seq, c)
    chunk_lane = np.repeat(lane_of, c)
    j = np.arange(total, dtype=np.int64) - np.repeat(starts, c)
    chunk_batch = np.repeat(start_batch, c) + j
    series = np.full((nb, batch_size), -1, dtype=np.int64)
    step = np.zeros((nb, batch_size), dtype=np.int64)
    valid = np.zeros((nb, batch_size), dtype=np.int64)
    resets = np.zeros((nb, batch_size), dtype=bool)
    series[chunk_batch, chunk_lane] = chunk_series
    step[chunk_batch, chunk_lane] = j * timesteps
    valid[chunk_batch, chunk_lane] = np.minimum(timesteps, usable[chunk_series] - j * timesteps)
    resets[start_batch, lane_of] = True
    return LanePlan(series, step, valid, resets)


def plan_lanes(lengths: Sequence[int], timesteps: int, batch_size: int, *, horizon: int = 0,
               remainder: str = "pad") -> LanePlan:
    """The lane plan of many series from their lengths alone (no data needed).

    This is what :func:`arrange_stateful` computes before it reads anything: for a million series
    it is a few small integer arrays, whatever their total size.

    Parameters
    ----------
    lengths : steps per series
    timesteps, batch_size : chunk length and number of lanes
    horizon : steps held back at the end of each series for next-step targets (``targets="next"``
        uses ``horizon`` >= 1; 0 for no targets)
    remainder : "pad" (a series' last partial chunk is kept, padded) or "drop"
    """
    timesteps = _check_int("timesteps", timesteps, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    if remainder not in ("pad", "drop"):
        raise ParameterError(f"remainder={remainder!r} must be 'pad' or 'drop' for a plan.", "pass remainder='pad'.")
    usable = np.maximum(np.asarray(lengths, dtype=np.int64) - horizon, 0)
    chunks = -(-usable // timesteps) if remainder == "pad" else usable // timesteps
    if remainder == "drop":
        usable = chunks * timesteps
    return _packed_lane_plan(usable, chunks, timesteps, batch_size)


class Arranged:
    """Series arranged in lanes for a stateful model; see :func:`arrange_stateful`.

    Attributes
    ----------
    X : ndarray ``(n_batches * batch_size, timesteps, features)``
        Rows ``k*B .. k*B+B-1`` are batch ``k``; row ``k*B+i`` continues row ``(k-1)*B+i``.
        Feed with ``model.fit(**arranged.fit_kwargs())`` (``shuffle=False``).
    y : ndarray or None
        ``(n, timesteps, target_features)`` with ``return_sequences``, else ``(n, target_features)``.
    sample_weight : ndarray
        ``(n, timesteps)`` with ``return_sequences`` (0 on padded steps), else ``(n,)`` (0 for a chunk
        that holds padding).
    resets : ndarray of bool ``(n_batches, batch_size)``
        Lanes that start a new series at each batch.
    plan : LanePlan
        Series, first step and real-step count of every (batch, lane) slot.
    padding_fraction : float
        Padded steps / all steps.
    left_out : list of dict
        Steps not arranged (``remainder="drop"``, or series too short), per series.
    """

    def __init__(self, *, base, offsets, ybase, yshift, plan, timesteps, return_sequences, horizon,
                 pad_value, series_ids, series_lengths, usable, left_out, feature_names=None,
                 continues=False, first_batch=0, target_mode=None, view4d=None, yview4d=None):
        self._base = base
        self._offsets = offsets
        self._ybase = ybase
        self._yshift = yshift  # target row = input row + yshift (seq) / chunk's last valid row + yshift
        self.plan = plan
        self.timesteps = timesteps
        self.return_sequences = return_sequences
        self.horizon = horizon
        self.pad_value = pad_value
        self.series_ids = list(series_ids)
        self.series_lengths = np.asarray(series_lengths)
        self._usable = np.asarray(usable)
        self.left_out = left_out
        self.feature_names = feature_names
        self.continues = continues  # True for a validation tail that continues training lanes
        self.first_batch = first_batch
        self.target_mode = target_mode
        self._view4d = view4d
        self._yview4d = yview4d
        self._cache: dict[str, Any] = {}

    # ---------------------------------------------------------------- sizes
    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    @property
    def n_batches(self) -> int:
        return self.plan.n_batches

    @property
    def n_features(self) -> int:
        return int(self._base.shape[1])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_batches * self.batch_size, self.timesteps, self.n_features)

    @property
    def batch_shape(self) -> tuple[int, int, int]:
        """For ``keras.Input(batch_shape=arranged.batch_shape)``."""
        return (self.batch_size, self.timesteps, self.n_features)

    @property
    def resets(self) -> np.ndarray:
        return self.plan.resets

    @property
    def padding_fraction(self) -> float:
        total = self.plan.valid.size * self.timesteps
        return float(1.0 - self.plan.valid.sum() / total) if total else 0.0

    @property
    def lower_bound_batches(self) -> int:
        """Fewest batches any lane packing could need: ``ceil(total_chunks / batch_size)``."""
        chunks = int((self.plan.valid > 0).sum())
        return -(-chunks // self.batch_size)

    # ---------------------------------------------------------------- materialise
    def _rows(self, k0: int, k1: int):
        """Absolute start row in the base, validity, for batches k0..k1 flattened to (rows,)."""
        p = self.plan
        s = p.series[k0:k1].reshape(-1)
        start = np.where(s >= 0, self._offsets[np.maximum(s, 0)] + p.step[k0:k1].reshape(-1), 0)
        return start, p.valid[k0:k1].reshape(-1)

    def _gather_store(self, base: Any, start: np.ndarray, valid: np.ndarray, shift: int, key: str) -> np.ndarray:
        """One batch from an out-of-core store: every lane reads ahead ``READAHEAD`` chunks at once,
        because the next batch continues each lane where this one ends."""
        t = self.timesteps
        cache = self._cache.setdefault("lanes-" + key, {})
        out = np.full((len(start), t) + base.shape[1:], self.pad_value, dtype=base.dtype)
        n = len(base)
        for lane, (s, v) in enumerate(zip(start + shift, valid)):
            if v == 0:
                continue
            lo, block = cache.get(lane, (-1, None))
            if not (block is not None and lo <= s and s + v <= lo + len(block)):
                lo = int(s)
                block = base.read(lo, min(n, lo + self.READAHEAD * t))
                cache[lane] = (lo, block)
            out[lane, :v] = block[s - lo: s - lo + v]
        return out

    READAHEAD = 16  # chunks per lane read at once from a store (64 lanes x 16 x T rows in memory)

    def _gather(self, base: np.ndarray, start: np.ndarray, valid: np.ndarray, shift: int, key: str = "x") -> np.ndarray:
        if not isinstance(base, np.ndarray) and len(start) == self.batch_size:
            return self._gather_store(base, start, valid, shift, key)
        t = self.timesteps
        chunks = strided_windows(base, t)  # (rows - t + 1, t, ...) view
        start = start + shift
        full = valid == t
        if len(chunks):
            out = chunks[np.where(full, start, 0)]  # one gather of whole chunks
        else:  # fewer rows than one chunk: everything is partial
            out = np.empty((len(start), t) + base.shape[1:], dtype=base.dtype)
        partial = np.flatnonzero(~full)
        if len(partial):
            steps = np.arange(t)
            rows = np.minimum(start[partial, None] + steps, len(base) - 1)
            mask = steps[None, :] < valid[partial, None]
            fill = base[rows]
            pad = np.asarray(self.pad_value, dtype=out.dtype)
            mask = mask.reshape(mask.shape + (1,) * (fill.ndim - 2))
            out[partial] = np.where(mask, fill, pad)
        return out

    def _materialise_x(self, k0: int, k1: int) -> np.ndarray:
        if self._view4d is not None:
            return np.ascontiguousarray(self._view4d[k0:k1]).reshape((-1,) + self._view4d.shape[2:])
        start, valid = self._rows(k0, k1)
        return self._gather(self._base, start, valid, 0)

    def _materialise_y(self, k0: int, k1: int) -> np.ndarray | None:
        if self._ybase is None:
            return None
        if self._yview4d is not None:
            return np.ascontiguousarray(self._yview4d[k0:k1]).reshape((-1,) + self._yview4d.shape[2:])
        start, valid = self._rows(k0, k1)
        if self.return_sequences:
            return self._gather(self._ybase, start, valid, self._yshift, key="y")
        last = start + np.maximum(valid, 1) - 1 + self._yshift
        y = self._ybase[np.minimum(last, len(self._ybase) - 1)]
        y[valid == 0] = self.pad_value
        return y

    def _weights(self, k0: int, k1: int) -> np.ndarray:
        valid = self.plan.valid[k0:k1].reshape(-1)
        if self.return_sequences:
            return (np.arange(self.timesteps)[None, :] < valid[:, None]).astype(np.float32)
        return (valid == self.timesteps).astype(np.float32)

    @property
    def X(self) -> np.ndarray:
        if "X" not in self._cache:
            self._cache["X"] = self._materialise_x(0, self.n_batches)
        return self._cache["X"]

    @property
    def y(self) -> np.ndarray | None:
        if "y" not in self._cache:
            self._cache["y"] = self._materialise_y(0, self.n_batches)
        return self._cache["y"]

    @property
    def sample_weight(self) -> np.ndarray:
        if "w" not in self._cache:
            self._cache["w"] = self._weights(0, self.n_batches)
        return self._cache["w"]

    @property
    def batches(self) -> np.ndarray:
        """X as ``(n_batches, batch_size, timesteps, features)``; a zero-copy view where possible."""
        if self._view4d is not None:
            return self._view4d
        return self.X.reshape((self.n_batches, self.batch_size) + self.X.shape[1:])

    def batch(self, k: int) -> tuple[np.ndarray, ...]:
        """Batch ``k`` as ``(X, y, sample_weight)`` (``(X,)`` without targets), materialised alone."""
        if not 0 <= k < self.n_batches:
            raise ParameterError(f"batch {k} is outside 0..{self.n_batches - 1}.", "pass a valid batch index.")
        if "X" in self._cache:
            sl = slice(k * self.batch_size, (k + 1) * self.batch_size)
            x = self.X[sl]
            y = None if self._ybase is None else self.y[sl]
            w = self.sample_weight[sl]
        else:
            x, y, w = self._materialise_x(k, k + 1), self._materialise_y(k, k + 1), self._weights(k, k + 1)
        return (x,) if y is None else (x, y, w)

    def fit_kwargs(self) -> dict[str, Any]:
        """``model.fit(**arranged.fit_kwargs(), epochs=...)``: x, y, sample_weight, batch_size, shuffle=False."""
        kw: dict[str, Any] = {"x": self.X, "batch_size": self.batch_size, "shuffle": False}
        if self._ybase is not None:
            kw.update(y=self.y, sample_weight=self.sample_weight)
        return kw

    def __iter__(self):
        return iter((self.X,) if self._ybase is None else (self.X, self.y))

    # ---------------------------------------------------------------- splitting / the way back
    def split(self, validation: float = 0.2) -> tuple["Arranged", "Arranged"]:
        """Split every lane in time: the first batches train, the tail of every lane validates.

        The validation part continues the training lanes (``continues=True``), so a stateful model
        can validate from the state it reached at the end of the training batches.
        """
        if not 0 < validation < 1:
            raise ParameterError(f"validation must be a fraction in (0, 1), got {validation}.",
                                 "pass e.g. validation=0.2.")
        n_val = max(1, int(np.ceil(self.n_batches * validation)))
        if n_val >= self.n_batches:
            raise ParameterError(f"only {self.n_batches} batches: cannot hold {n_val} back for validation.",
                                 "use a smaller validation fraction or smaller timesteps/batch_size.")
        cut = self.n_batches - n_val
        return self._subset(0, cut, continues=self.continues), self._subset(cut, self.n_batches, continues=True)

    def _subset(self, k0: int, k1: int, continues: bool) -> "Arranged":
        new = Arranged(base=self._base, offsets=self._offsets, ybase=self._ybase, yshift=self._yshift,
                       plan=self.plan.subset(k0, k1), timesteps=self.timesteps,
                       return_sequences=self.return_sequences, horizon=self.horizon, pad_value=self.pad_value,
                       series_ids=self.series_ids, series_lengths=self.series_lengths, usable=self._usable,
                       left_out=self.left_out, feature_names=self.feature_names, continues=continues,
                       first_batch=self.first_batch + k0, target_mode=self.target_mode,
                       view4d=None if self._view4d is None else self._view4d[k0:k1],
                       yview4d=None if self._yview4d is None else self._yview4d[k0:k1])
        return new

    def provenance(self, batch: int, lane: int) -> dict[str, Any]:
        """Which series and steps sit in ``lane`` at ``batch``."""
        s = int(self.plan.series[batch, lane])
        if s < 0:
            return {"series": None, "steps": None, "padding": self.timesteps, "reset": False}
        st = int(self.plan.step[batch, lane])
        v = int(self.plan.valid[batch, lane])
        return {"series": self.series_ids[s], "steps": (st, st + v), "padding": self.timesteps - v,
                "reset": bool(self.plan.resets[batch, lane])}

    def unarrange(self, outputs: Any, *, as_dict: bool = False):
        """Map model outputs in arranged order back to each series, dropping padding.

        Parameters
        ----------
        outputs : array ``(n_batches * batch_size, timesteps, ...)`` (``return_sequences``) or
            ``(n_batches * batch_size, ...)`` (one output per chunk), e.g. ``model.predict(...)``.

        Returns
        -------
        list (or dict keyed by series id) of arrays: per series ``(steps_arranged, ...)`` for sequence
        outputs (row ``t`` is the output at input step ``t``), or ``(chunks, ...)`` per chunk.
        """
        out = np.asarray(outputs)
        nrows = self.n_batches * self.batch_size
        if (out.shape[0] != nrows and out.shape[0] == self.n_batches and out.ndim >= 2
                and out.shape[1] == self.batch_size):  # given as (n_batches, batch_size, ...)
            out = out.reshape((nrows,) + out.shape[2:])
        if out.shape[0] != nrows:
            raise LengthMismatchError(
                f"outputs have {out.shape[0]} rows but the arrangement has {nrows} "
                f"({self.n_batches} batches x {self.batch_size} lanes).",
                "pass the outputs of model.predict on exactly these batches, in order.")
        s = self.plan.series.reshape(-1)
        st = self.plan.step.reshape(-1)
        v = self.plan.valid.reshape(-1)
        n_series = len(self.series_ids)
        seq = out.ndim >= 2 and out.shape[1] == self.timesteps and self.return_sequences
        if seq:
            t = np.arange(self.timesteps)
            mask = (t[None, :] < v[:, None]) & (s[:, None] >= 0)
            vals = out[mask]  # (n_valid, ...)
            sid = np.broadcast_to(s[:, None], mask.shape)[mask]
            step = (st[:, None] + t[None, :])[mask]
        else:
            keep = (s >= 0) & (v > 0)
            vals, sid, step = out[keep], s[keep], st[keep]
        order = np.lexsort((step, sid))
        vals, sid = vals[order], sid[order]
        counts = np.bincount(sid, minlength=n_series)
        parts = np.split(vals, np.cumsum(counts)[:-1])
        if as_dict:
            return {self.series_ids[i]: parts[i] for i in range(n_series)}
        return parts

    # ---------------------------------------------------------------- reporting
    def _explain(self):
        from .explain import Explanation

        p, b, t = self.plan, self.batch_size, self.timesteps
        n_series = len(self.series_ids)
        resets_mid = int(p.resets[1:].sum())
        idle = int((p.valid == 0).sum())
        lines = [
            f"{self.n_batches} batches per epoch of {b} lanes x {t} timesteps x {self.n_features} feature(s); "
            f"model: keras.Input(batch_shape=({b}, {t}, {self.n_features})), fit(..., shuffle=False).",
            f"{b} parallel states, one per lane: row i of batch k+1 continues row i of batch k.",
            (f"1 series split into {b} contiguous lanes; no lane starts a new series mid-epoch, so state is reset "
             "only at the start of each epoch (statebatch.keras.LaneResetCallback)." if n_series == 1 else
             f"{n_series} series in {b} lanes; lanes move on to a new series {resets_mid} time(s) after the first "
             "batch, and that lane's state must be zeroed there (statebatch.keras.LaneResetCallback does it)."),
            f"padding: {self.padding_fraction:.2%} of steps ({idle} idle lane slots); padded steps carry sample "
            f"weight 0. {self.n_batches} batches (lower bound {self.lower_bound_batches}).",
        ]
        if self.left_out:
            lost = sum(d["steps"] for d in self.left_out)
            lines.append(f"left out: {lost} steps in {len(self.left_out)} place(s); see .left_out.")
        return Explanation(shape=self.shape, batch_size=b, stateful=True, n_batches=self.n_batches,
                           last_batch_size=b, parallel_states=b, resets_per_epoch=1 + resets_mid, lines=lines,
                           extra={"padding_fraction": self.padding_fraction, "n_series": n_series})

    def explain(self):
        return self._explain()

    def __repr__(self) -> str:
        return (f"Arranged(X={self.shape}, batches={self.n_batches}, lanes={self.batch_size}, "
                f"series={len(self.series_ids)}, padding={self.padding_fraction:.2%}, "
                f"resets={int(self.plan.resets.sum())}, left_out_steps={sum(d['steps'] for d in self.left_out)})")


def arrange_stateful(
    data: Any,
    timesteps: int,
    batch_size: int,
    *,
    targets: Any = "next",
    horizon: int = 1,
    return_sequences: bool = True,
    remainder: str = "pad",
    pad_value: float = 0.0,
    target_features: Sequence[int] | None = None,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
) -> Arranged:
    """Arrange series into lanes for a stateful RNN.

    Parameters
    ----------
    data : one series (any input :func:`~statebatch.make_windows` accepts) or many (a list of
        arrays, or a long DataFrame with ``id_col``).
        One series is split into ``batch_size`` contiguous lanes; many series are packed into lanes
        (longest first to the least-loaded lane), and a lane's state is reset where it moves on to
        its next series (``resets``).
    timesteps : int
        Length of each chunk (a row of a batch).
    batch_size : int
        Lanes; the model's fixed batch size.
    targets : "next", None, or array(s) aligned with the series
        ``"next"``: the value ``horizon`` steps later, per timestep with ``return_sequences`` (many-to-
        many) or after each chunk's last step otherwise (many-to-one). Aligned arrays: the target of
        each step (or of each chunk's last step). ``target_cols`` of a DataFrame as targets.
    remainder : "pad", "drop" or "error"
        What to do with a series' last partial chunk and idle lane slots: pad them (sample weight 0),
        drop the partial chunks (reported in ``left_out``), or raise :class:`RemainderError`.
    pad_value : float

    Returns
    -------
    Arranged

    Notes
    -----
    One series with ``remainder="drop"`` is a zero-copy view ``(n_batches, batch_size, timesteps,
    features)`` (``Arranged.batches``); ``Arranged.X`` is one copy in batch order. Otherwise X is one
    gather of whole chunks.
    """
    timesteps = _check_int("timesteps", timesteps, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    horizon = _check_int("horizon", horizon, 1)
    if remainder not in ("pad", "drop", "error"):
        raise ParameterError(f"remainder={remainder!r} is not one of 'pad', 'drop', 'error'.",
                             "pass remainder='pad' (default, weight 0), 'drop' (reported) or 'error'.")
    ss = as_series(data, id_col=id_col, time_col=time_col, feature_cols=feature_cols,
                   target_cols=target_cols, dtype=dtype)
    base, offsets = ss.concatenated()
    lengths = ss.lengths

    # Targets: a base array and the row shift from an input row to its target row.
    ybase, yshift, target_mode = None, 0, None
    if isinstance(targets, str) and targets == "next":
        target_mode = "next"
        ybase = ss.next_value_base(base, target_cols, target_features)
        yshift = horizon
        usable = np.maximum(lengths - horizon, 0)
    elif targets is None:
        usable = lengths.copy()
    elif isinstance(targets, str):
        raise ParameterError(f"targets={targets!r} is not understood.",
                             "pass 'next', None, or target arrays aligned with the series.")
    else:
        target_mode = "aligned"
        tl = [np.asarray(targets)] if len(ss.arrays) == 1 and not isinstance(targets, (list, tuple)) else \
            [np.asarray(t) for t in targets]
        if len(tl) != len(ss.arrays) or any(len(t) != len(a) for t, a in zip(tl, ss.arrays)):
            raise LengthMismatchError(
                f"targets must be aligned row by row with the series: got lengths {[len(t) for t in tl][:5]} "
                f"for series of lengths {lengths[:5].tolist()}.",
                "pass one target array per series, each as long as its series.")
        ybase = tl[0] if len(tl) == 1 else np.concatenate(tl)
        if ybase.ndim == 1:
            ybase = ybase[:, None]
        usable = lengths.copy()

    left_out: list[dict] = []
    for k in np.flatnonzero(usable == 0):
        left_out.append({"series": ss.ids[k], "first_step": 0, "steps": int(lengths[k]),
                         "reason": f"too short for a target {horizon} step(s) ahead"})
    if remainder == "pad":
        chunks = -(-usable // timesteps)
    else:
        chunks = usable // timesteps
        tail = usable - chunks * timesteps
        if remainder == "error" and tail.any():
            bad = np.flatnonzero(tail)
            raise RemainderError(
                f"{len(bad)} series do not divide into chunks of {timesteps} steps (series "
                f"{[ss.ids[i] for i in bad[:5]]} leave {tail[bad[:5]].tolist()} step(s)).",
                "use remainder='pad' (padded steps get sample weight 0) or remainder='drop' (reported).")
        for k in np.flatnonzero(tail):
            left_out.append({"series": ss.ids[k], "first_step": int(chunks[k] * timesteps), "steps": int(tail[k]),
                             "reason": f"remainder='drop': last partial chunk of {timesteps} steps"})
        usable = chunks * timesteps
    if chunks.sum() == 0:
        raise ShapeError(
            f"no chunk of {timesteps} steps fits: series lengths {lengths[:10].tolist()} "
            f"(minus horizon {horizon if target_mode == 'next' else 0}).",
            "use fewer timesteps or longer series.")

    view4d = yview4d = None
    in_memory = isinstance(base, np.ndarray)  # a store is read batch by batch, never reshaped whole
    if len(ss.arrays) == 1:
        c = int(chunks[0])
        if remainder != "pad":
            q = c // batch_size
            if remainder == "error" and c % batch_size:
                raise RemainderError(
                    f"{c} chunks do not divide into {batch_size} lanes ({c % batch_size} chunk(s) over).",
                    "use remainder='pad' or 'drop', or choose a batch_size that divides the chunk count.")
            if q == 0:
                raise ShapeError(f"only {c} chunk(s) of {timesteps} steps for {batch_size} lanes.",
                                 "use fewer lanes (batch_size) or shorter timesteps, or remainder='pad'.")
            if c % batch_size:
                lost = (c - q * batch_size) * timesteps
                left_out.append({"series": ss.ids[0], "first_step": int(q * batch_size * timesteps),
                                 "steps": int(lost), "reason": f"remainder='{remainder}': chunks beyond "
                                 f"{batch_size} equal lanes"})
            c = q * batch_size
            usable = np.array([c * timesteps])
            n = c * timesteps
            f = base.shape[1]
        if remainder != "pad" and in_memory:
            view4d = base[:n].reshape(batch_size, q, timesteps, f).swapaxes(0, 1)
            if target_mode == "next" and return_sequences:
                yb = ybase[yshift:yshift + n]
                yview4d = yb.reshape(batch_size, q, timesteps, yb.shape[1]).swapaxes(0, 1)
            elif target_mode == "aligned" and return_sequences:
                yb = ybase[:n]
                yview4d = yb.reshape((batch_size, q, timesteps) + yb.shape[1:]).swapaxes(0, 1)
            view4d.flags.writeable = False
        plan = _balanced_lane_plan(int(usable[0]), timesteps, batch_size, c)
    else:
        plan = _packed_lane_plan(usable, chunks, timesteps, batch_size)
    return Arranged(base=base, offsets=offsets, ybase=ybase, yshift=yshift if target_mode == "next" else 0,
                    plan=plan, timesteps=timesteps, return_sequences=return_sequences, horizon=horizon,
                    pad_value=pad_value, series_ids=ss.ids, series_lengths=lengths, usable=usable,
                    left_out=left_out, feature_names=ss.feature_names, target_mode=target_mode,
                    view4d=view4d, yview4d=yview4d)
