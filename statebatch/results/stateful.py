"""Stateful arrangement: series into *lanes* so that row i of batch k+1 continues row i of batch k.

A stateful Keras RNN keeps ``batch_size`` parallel states; the state of row ``i`` at the end of
batch ``k`` is the initial state of row ``i`` in batch ``k+1``. :func:`arrange_stateful` is "plan,
then bind a row source": :func:`~statebatch.plans.lanes.plan_lanes` decides from the series lengths
which series and steps sit in each lane at each batch and where lanes reset (per epoch, when
shuffled or jittered); :class:`Arranged` binds it to the row source and hands out X, y and sample
weights batch by batch, read (and cached) by :class:`~statebatch.materialise.lanes.LaneEpochs`."""

from __future__ import annotations

from dataclasses import fields, replace
import warnings
from typing import Any, Sequence

import numpy as np

from .._args import check_bool, check_choice, check_fraction, check_int, percent, plural, resolve_seed
from ..errors import ParameterError, StatebatchError
from .provenance import LANES, Provenance, register_provenance
from ..materialise.gather import LaneReader
from ..materialise.lanes import HeadSeries, LaneEpochs, lane_outputs, packs_lanes
from ..plans.base import LeftOut, named
from ..plans.lanes import REMAINDERS, LanePlan, plan_lanes, reset_counts
from .batched import Batched, Explanation, SizedResult
from .lane_checks import check_pad_value, lane_targets, warn_padding
from .lane_covariates import LaneCovariates, build_lane_covariates, covariate_fit_kwargs, covariate_options
from ..sources.options import InputOptions
from ..sources.series import (SeriesSet, apply_gaps, as_series,
                              check_finite_series, checked_finite, in_memory)
from ..sources.base import RowSource

__all__ = ["Arranged", "arrange_stateful"]

#: What a lane does with a series' last partial chunk and idle slots: pad them, drop them, or refuse.
TAILS = REMAINDERS


class Arranged(SizedResult, Batched):
    """Series arranged in lanes for a stateful model; see :func:`arrange_stateful`.

    Follows the result protocol (:mod:`statebatch.result`). Batch ``k`` is ``(X, y, sample_weight)``
    (``(X,)`` without targets) with ``batch_size`` rows; row ``i`` continues row ``i`` of batch
    ``k - 1`` unless ``resets[k, i]``.

    Attributes
    ----------
    X : ndarray ``(n_batches * batch_size, timesteps, features)``
        The current epoch in batch order (for ``model.fit(**arranged.fit_kwargs())``); with covariates the
        lanes' own input, ``past`` (``arrays()`` holds every input).
    y : ndarray or None
        ``(n, timesteps, target_features)`` with ``return_sequences``, else ``(n, target_features)``.
    sample_weight : ndarray
        ``(n, timesteps)`` with ``return_sequences`` (0 on padded steps), else ``(n,)`` (0 for a chunk
        that holds padding).
    resets : ndarray of bool ``(n_batches, batch_size)``
        Lanes that start a new series at each batch of the current epoch.
    """

    def __init__(self, ss: SeriesSet, *, timesteps: int, batch_size: int, target_mode: str | None,
                 ysource: RowSource | None, yshift: int, horizon: int, return_sequences: bool, tail: str,
                 pad_value: float, shuffle: bool, seed: int, jitter: int, continues: bool = False,
                 fixed_plan: LanePlan | None = None, first_batch: int = 0,
                 weight_from: np.ndarray | None = None):
        self._ss = ss
        # Holdout in time (validation part of split): per series, the first input step whose target is held out;
        # the steps before it run with sample weight 0 so that the state reaches the held-out part.
        self.weight_from = weight_from
        self.timesteps = timesteps
        self.batch_size = batch_size
        self.target_mode = target_mode
        self._ysource = ysource
        self._yshift = yshift
        self.horizon = horizon
        self.return_sequences = return_sequences
        self.tail = tail
        self.pad_value = pad_value
        self.shuffle = shuffle
        self.seed = seed
        self.jitter = jitter
        self.continues = continues  # True for a validation tail that continues training lanes
        self.first_batch = first_batch
        self._fixed = fixed_plan
        self.series_ids = list(ss.ids)
        self.feature_names = ss.feature_names
        self.series_lengths = ss.lengths
        self.epoch = 0
        #: static/known covariates (``arrange_stateful(static_cols=..., known_cols=...)``): batches are mappings
        self.covariates: LaneCovariates | None = None
        # batches, blocks and epochs are read (and cached) by the lane materialiser
        self._m = LaneEpochs(ss, ysource=ysource, yshift=yshift, return_sequences=return_sequences,
                             pad_value=pad_value, weight_from=weight_from,
                             varies=fixed_plan is None and bool(shuffle or jitter))
        self.plan(0)  # plan now: errors surface here, not at the first batch

    @property
    def remainder(self) -> str:
        """The old name of :attr:`tail` (read-only)."""
        return self.tail

    # ---------------------------------------------------------------- plan
    def _make_plan(self, epoch: int) -> LanePlan:
        if self._fixed is not None:
            return self._fixed
        if not self.varies and self.__dict__.get("_plans"):  # every epoch's plan is the same: planned once
            return replace(next(iter(self.__dict__["_plans"].values())), epoch=epoch)
        return plan_lanes(self._ss.lengths, self.timesteps, self.batch_size,
                          targets="next" if self.target_mode == "next" else None, horizon=self.horizon,
                          tail=self.tail, shuffle=self.shuffle, seed=self.seed, epoch=epoch,
                          jitter=self.jitter)

    @property
    def varies(self) -> bool:
        """Whether plans differ from epoch to epoch (shuffled packing or jittered chunk lengths)."""
        return self._fixed is None and (self.jitter > 0 or (self.shuffle and self._ss.n_series > 1))

    # ---------------------------------------------------------------- sizes (n_features, n_series, shape: SizedResult)
    def _n_samples(self) -> int:
        return self.n_batches * self.batch_size

    @property
    def batch_shape(self) -> tuple:
        """For ``keras.Input(batch_shape=arranged.batch_shape)`` (time axis ``None`` when it varies)."""
        return (self.batch_size, None if self.jitter else self.timesteps, self.n_features)

    @property
    def resets(self) -> np.ndarray:
        return self.plan().resets

    @property
    def lower_bound_batches(self) -> int:
        return self.plan().lower_bound_batches

    @property
    def left_out(self) -> list[LeftOut]:
        """Steps in no batch this epoch, and (many-to-one) steps whose targets carry weight 0."""
        plan = self.plan()
        out = named(plan.left_out, self.series_ids)
        if self.has_targets and not self.return_sequences:
            lens = plan.steps_per_batch[:, None]
            part = (plan.valid > 0) & (plan.valid < lens)
            for k, i in zip(*np.nonzero(part)):
                s = int(plan.series[k, i])
                out.append(LeftOut(self.series_ids[s], int(plan.step[k, i]), int(plan.valid[k, i]),
                                   "many-to-one: a series' last partial chunk has no full-length output, so its "
                                   "target carries weight 0 (use return_sequences=True or tail='drop')"))
        return out

    # ---------------------------------------------------------------- materialise (materialise.lanes)
    # The torch and Keras adapters read these private names; they delegate to ``self._m``.
    @property
    def _cache(self) -> dict[tuple, tuple[np.ndarray, ...]]:
        return self._m.cache

    @property
    def _lanes(self) -> dict[tuple, np.ndarray]:
        return self._m.lanes

    def _cache_key(self, plan: LanePlan) -> tuple:
        return self._m.cache_key(plan)

    def _reader(self, key: Any, source: RowSource) -> LaneReader | None:
        return self._m.reader(key, source)

    def _held_out(self, plan: LanePlan, arrays: tuple, k: int | slice | None, lanes: slice | None = None) -> tuple:
        return self._m.held_out(plan, arrays, k, lanes)

    def _materialise_epoch(self, plan: LanePlan) -> tuple[np.ndarray, ...]:
        return self._m.materialise_epoch(plan)

    def _pack_checked(self) -> bool:
        return self._m.pack_checked(self.plan())

    _packs = staticmethod(packs_lanes)

    def batch(self, k: int, epoch: int | None = None, *, lanes: slice | None = None) -> Any:
        """Batch ``k`` of ``epoch`` (default: the current one): ``(X, y, sample_weight)`` or ``(X,)``; with
        covariates a mapping (``past``, ``future``, ``static``, ``y``, ``sample_weight``:
        :mod:`statebatch.results.lane_covariates`).

        ``lanes`` (a slice of lane indices, e.g. one replica's block from
        :func:`statebatch.feed.lane_block`): only those rows of the batch. Out-of-core data is then read
        only for those lanes, each block through its own read-ahead buffer, so a process that trains
        one block of lanes never reads the others' rows."""
        arrays = self._arrays_of(k, epoch, lanes=lanes)
        if self.covariates is None:
            return arrays
        plan = self.plan(epoch)  # the plan the arrays were read from
        return self.covariates.batch(arrays, plan, int(k), lanes)

    def _arrays_of(self, k: int, epoch: int | None = None, *, lanes: slice | None = None) -> tuple[np.ndarray, ...]:
        """Batch ``k`` as plain arrays ``(X, y, sample_weight)`` or ``(X,)`` (see :meth:`batch`)."""
        plan = self._serve(epoch)
        k = self._check_k(k, plan.n_batches)
        m, key, b = self._m, self._m.cache_key(plan), self.batch_size
        if lanes is not None:
            if not (isinstance(lanes, slice) and lanes.step in (None, 1)
                    and 0 <= (lanes.start or 0) < (b if lanes.stop is None else lanes.stop) <= b):
                raise ParameterError(f"lanes must be a slice of consecutive lane indices within 0..{b - 1}, got "
                                     f"{lanes!r}.", "pass e.g. slice(0, 4), or statebatch.feed.lane_block(...).")
            if key in m.cache or m.lanes.get((key, "x")) is not None \
                    or m.in_memory():  # in memory: a slice of the whole batch
                return tuple(a[lanes] for a in self._arrays_of(k, plan.epoch))
            return self._finite(m.held_out(plan, m.batch_arrays(plan, k, lanes), k, lanes), k)
        if key in m.cache:
            arrays = m.cache[key]
            return tuple(np.ascontiguousarray(a[k * b:(k + 1) * b]) for a in arrays)
        return self._finite(m.held_out(plan, m.batch_arrays(plan, k), k), k)

    def _cache_epoch(self, max_bytes: int) -> bool:
        """Materialise the current epoch (then batch ``k`` is a view of it) when its rows are in memory, its
        batches have one length and its arrays take at most ``max_bytes``; returns whether it is cached.
        Keras datasets call this: serving views costs nothing per batch, gathering chunks does."""
        plan = self.plan()
        if self._m.cache_key(plan) in self._m.cache:
            return True
        if not self._m.fits_cache(plan, max_bytes):
            return False
        self._epoch_arrays()
        return True

    def _block(self, k0: int, k1: int, epoch: int | None = None) -> tuple[np.ndarray, ...] | None:
        """Batches ``k0 .. k1-1`` stacked, ``(k1 - k0, batch_size, ...)`` per array, in one gather (views of
        the epoch arrays when they are materialised); ``None`` where batches are read lane by lane (out of
        core) or differ in length (jitter). Feeds :func:`statebatch.keras.to_tf_dataset` in blocks."""
        plan = self._serve(epoch)
        if not self._m.by_block(plan):
            return None
        if not 0 <= k0 < k1 <= plan.n_batches:
            raise ParameterError(f"batches {k0}..{k1 - 1} are outside 0..{plan.n_batches - 1}.",
                                 "ask for a range inside the epoch.")
        b = self.batch_size
        cached = self._m.cache.get(self._m.cache_key(plan))
        if cached is not None:
            arrays = tuple(a[k0 * b:k1 * b] for a in cached)
        else:
            arrays = self._finite(self._m.block(plan, k0, k1), k0)
        return tuple(a.reshape((k1 - k0, b) + a.shape[1:]) for a in arrays)

    def _epoch_arrays(self) -> tuple[np.ndarray, ...]:
        plan = self.plan()
        cached = self._m.cache.get(self._m.cache_key(plan))
        if cached is not None:
            return cached
        arrays = self._finite(self._m.epoch(plan, self.jitter), -1)
        prov = self._provenance(plan)
        # recognised when they come back to validate / explain / detect_layout
        return self._m.keep_epoch(plan, arrays, lambda a: register_provenance(a, prov))

    def _provenance(self, plan: LanePlan) -> Provenance:
        resets = int(np.count_nonzero(plan.resets[1:])) if plan.n_batches > 1 else 0
        return Provenance(LANES, plan.batch_size, plan.timesteps, resets=resets, maker="arrange_stateful",
                          n_series=self._ss.n_series)

    @property
    def X(self) -> np.ndarray:
        return self._epoch_arrays()[0]

    @property
    def y(self) -> np.ndarray | None:
        return self._epoch_arrays()[1] if self.has_targets else None

    @property
    def sample_weight(self) -> np.ndarray:
        """Weights of the current epoch (1 real step, 0 padding), also without targets."""
        if self.has_targets:
            return self._epoch_arrays()[2]
        return self._m.weights(self.plan())

    def arrays(self) -> tuple[np.ndarray, ...] | dict[str, np.ndarray]:
        """The current epoch as ``(X, y, sample_weight)`` (``(X,)`` without targets), batch after batch; with
        covariates the mapping of :meth:`batch` over the whole epoch (``past`` is ``X``), as forecasting windows."""
        arrays = self._epoch_arrays()
        return arrays if self.covariates is None else self.covariates.batch(arrays, self.plan(), slice(None))

    @property
    def batch_view(self) -> np.ndarray:
        """X as ``(n_batches, batch_size, timesteps, features)``; a zero-copy read-only view of the
        series for one in-memory series with ``tail="drop"`` (lane ``i`` is a contiguous piece)."""
        plan = self.plan()
        view = self._m.batch_view(plan) if self.tail != "pad" and self._fixed is None else None
        if view is not None:
            return register_provenance(view, self._provenance(plan))
        return self.X.reshape((plan.n_batches, plan.batch_size) + self.X.shape[1:])

    def fit_kwargs(self, model: Any = None) -> dict[str, Any]:
        """Keyword arguments for ``model.fit`` / ``evaluate`` on the current epoch's arrays; with covariates ``x``
        is a dict of ``past``/``future``/``static`` (``model=``: exactly its inputs, by name)."""
        if self.covariates is not None:
            epoch = self.covariates.batch(self._epoch_arrays(), self.plan(), slice(None))  # = arrays()
            return covariate_fit_kwargs(epoch, self.batch_size, model)
        if model is not None:
            raise ParameterError("fit_kwargs(model=) matches covariate inputs by name; these lanes have one input, X.",
                                 "drop model=, or arrange with static_cols=/known_cols=.")
        kw: dict[str, Any] = {"x": self.X, "batch_size": self.batch_size, "shuffle": False}
        if self.has_targets:
            kw.update(y=self.y, sample_weight=self.sample_weight)
        return kw
    # ---------------------------------------------------------------- splitting / the way back
    def split(self, validation: float = 0.2) -> tuple["Arranged", "Arranged"]:
        """Hold out the last part of every series in time: ``(train, val)``.

        ``train`` arranges the first part of every series with this arrangement's parameters (shuffle and
        jitter included). ``val`` arranges every whole series in the same way, but only targets in the
        held-out last part carry sample weight: each series' training part runs first with weight 0, so its
        state reaches the held-out steps as it stands after that series' training steps (with the current
        weights), whichever lanes the series share. Of a series of ``n`` steps, the last
        ``ceil(n * validation)`` targets are held out; no held-out value is ever an input or target of
        ``train``. ``val`` starts from zero state (``continues=False``) and resets where series start; one
        series runs whole in one lane (the other lanes idle), not cut into ``batch_size`` lanes.
        For a val_loss that is a mean over the held-out targets, use ``statebatch.keras.fit_stateful`` (it
        makes the loss a mean over weighted steps) or compile with
        ``keras.losses.MeanSquaredError(reduction="mean_with_sample_weight")``: Keras' default reduction
        also counts weight-0 steps."""
        validation = check_fraction("validation", validation)
        if self.weight_from is not None:
            raise ParameterError("this arrangement is already the validation part of a split.",
                                 "split the original arrangement (or arrange the data again) instead.")
        lengths = self._ss.lengths
        keep = lengths - np.ceil(lengths * validation).astype(np.int64)
        need = (self.horizon if self.target_mode == "next" else 0) + 1
        short = np.flatnonzero(keep < need)
        if short.size:
            names = [self.series_ids[i] for i in short[:5]]
            raise ParameterError(
                f"{plural(short.size, 'series', 'series')} ({names}) would keep fewer than {need} step(s) for training "
                f"after holding out {validation:.0%} of their steps.",
                "use a smaller validation fraction, or leave the shortest series out.")
        head = HeadSeries(**{f.name: getattr(self._ss, f.name) for f in fields(SeriesSet)}, keep=keep)
        train = self._like(head, shuffle=self.shuffle, jitter=self.jitter, continues=self.continues)
        whole = None
        if self._ss.n_series == 1:
            # One series is cut into batch_size lanes that each start from zero state; validation must run it whole
            # in one lane so that the held-out part follows every step before it. With a second, empty series the
            # planner packs whole series into lanes instead of cutting one (the empty one takes no lane).
            whole = plan_lanes(np.append(lengths, 0), self.timesteps, self.batch_size,
                               targets="next" if self.target_mode == "next" else None, horizon=self.horizon,
                               tail=self.tail)
        val = self._like(self._ss, shuffle=False, jitter=0, weight_from=keep - self._yshift, fixed_plan=whole)
        for part in (train, val):
            part.covariates = self.covariates  # same series, same rows: the same tables
            part._allow(self._allow_nan, self._allow_inf, checked=self._x_checked, lazy=self._lazy)
        return train, val

    def _like(self, ss: SeriesSet, *, shuffle: bool, jitter: int, continues: bool = False,
              weight_from: np.ndarray | None = None, fixed_plan: LanePlan | None = None) -> "Arranged":
        """An arrangement of ``ss`` with this one's targets and parameters (a split's parts)."""
        return Arranged(ss, timesteps=self.timesteps, batch_size=self.batch_size, target_mode=self.target_mode,
                        ysource=self._ysource, yshift=self._yshift, horizon=self.horizon,
                        return_sequences=self.return_sequences, tail=self.tail, pad_value=self.pad_value,
                        seed=self.seed, shuffle=shuffle, jitter=jitter, continues=continues,
                        weight_from=weight_from, fixed_plan=fixed_plan)

    def provenance(self, batch: int, lane: int, epoch: int | None = None) -> dict[str, Any]:
        """Which series and steps sit in ``lane`` at ``batch``."""
        plan = self.plan(epoch)
        batch = self._check_k(batch, plan.n_batches)
        lane = check_int("lane", lane)
        if not 0 <= lane < plan.batch_size:
            raise ParameterError(f"lane {lane} is outside 0..{plan.batch_size - 1}.", "pass a lane index below batch_size.")
        s = int(plan.series[batch, lane])
        length = plan.batch_length(batch)
        if s < 0:
            return {"series": None, "steps": None, "padding": length, "reset": False}
        st, v = int(plan.step[batch, lane]), int(plan.valid[batch, lane])
        return {"series": self.series_ids[s], "steps": (st, st + v), "padding": length - v,
                "reset": bool(plan.resets[batch, lane])}

    def unbatch(self, outputs: Any, *, as_dict: bool = False,
                epoch: int | None = None) -> list[np.ndarray] | dict[Any, np.ndarray]:
        """Map model outputs in batch order back to each series, dropping padding.

        Parameters
        ----------
        outputs : array ``(n_batches * batch_size, timesteps, ...)`` (sequence outputs) or
            ``(n_batches * batch_size, ...)`` (one output per chunk), e.g. ``model.predict(...)``; also
            ``(n_batches, batch_size, ...)`` or a list of per-batch arrays (needed when batch lengths vary).

        Returns
        -------
        list (or dict keyed by series id) of arrays: per series ``(steps_arranged, ...)`` for sequence
        outputs (row ``t`` is the output at input step ``t``), or ``(chunks, ...)`` per chunk.
        """
        parts = lane_outputs(self._outputs_plan(epoch), outputs, return_sequences=self.return_sequences,
                             n_series=self.n_series)
        if as_dict:
            return {self.series_ids[i]: parts[i] for i in range(self.n_series)}
        return parts

    # ---------------------------------------------------------------- reporting
    def explain(self) -> Explanation:
        p, b, t = self.plan(), self.batch_size, self.timesteps
        n_series = self.n_series
        resets_mid = int(p.resets[1:].sum())
        idle = int((p.valid == 0).sum())
        tshape = "None (varies)" if self.jitter else t
        lines = [
            f"stateful=True with {plural(b, 'lane')}: row i of batch k+1 continues row i of batch k, so each lane "
            f"carries one state through the epoch; state is zeroed at the start of every epoch"
            + (f" and where a lane moves on to a new series ({plural(resets_mid, 'mid-epoch lane reset')}, after "
               "the first batch)" if resets_mid else "") + " (statebatch.keras.LaneResetCallback does both).",
            f"{plural(p.n_batches, 'batch')} per epoch of {plural(b, 'lane')} x {tshape} timesteps x "
            f"{self.n_features} feature(s); model: keras.Input(batch_shape=({b}, {'None' if self.jitter else t}, "
            f"{self.n_features})), fit(..., shuffle=False).",
            ("1 series split into " + plural(b, "contiguous lane") + "." if n_series == 1 else
             f"{plural(n_series, 'series', 'series')} packed into {plural(b, 'lane')}"
             + ("; repacked in a new order every epoch." if self.shuffle else ".")),
            f"padding: {percent(p.padding_fraction)} of steps ({plural(idle, 'idle lane slot')}); padded steps carry sample "
            f"weight 0. {plural(p.n_batches, 'batch')} (lower bound {p.lower_bound_batches}).",
        ]
        if self.weight_from is not None:
            held = np.maximum(self.series_lengths - self.weight_from - self._yshift, 0)
            lines.append(f"holdout in time: only the last {plural(int(held.sum()), 'target')} of the series (the last "
                         f"{int(held.min())}-{int(held.max())} of each) carry weight; each series' earlier steps run first "
                         "with weight 0, so its state reaches the held-out part as after training on those steps.")
        left = self.left_out
        if left:
            lost = sum(lo.steps for lo in left)
            lines.append(f"left out: {plural(lost, 'step')} in {plural(len(left), 'place')}; see .left_out.")
        return Explanation(shape=self.shape, batch_size=b, stateful=True, n_batches=p.n_batches,
                           last_batch_size=b, parallel_states=b, resets_per_epoch=1 + resets_mid, lines=lines,
                           extra={"padding_fraction": p.padding_fraction, "n_series": n_series}, layout="lanes")

    def __repr__(self) -> str:
        p = self.plan()
        return (f"Arranged(X={self.shape}, batches={p.n_batches}, lanes={self.batch_size}, series={self.n_series}, "
                f"padding={percent(p.padding_fraction)}, {reset_counts(p.resets)}, epoch={self.epoch}"
                f"{', shuffled' if self.shuffle else ''}{f', jitter={self.jitter}' if self.jitter else ''}, "
                f"left_out_steps={sum(lo.steps for lo in self.left_out)})")


def arrange_stateful(
    data: Any,
    timesteps: int,
    batch_size: int,
    *,
    targets: Any = "next",
    horizon: int = 1,
    return_sequences: bool = True,
    tail: str = "pad",
    pad_value: float = 0.0,
    target_features: Sequence[int] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    jitter: int = 0,
    options: InputOptions | None = None,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
    allow_nan: bool = False,
    allow_inf: bool = False,
    gaps: str = "error",
    remainder: str | None = None,
    static_cols: Sequence[str] | None = None,
    known_cols: Sequence[str] | None = None,
    static_vocab: Any = None,
) -> Arranged:
    """Arrange series into lanes for a stateful RNN: plan from the lengths, then bind the data.

    Parameters
    ----------
    data : one series (any input :func:`~statebatch.make_windows` accepts) or many (a list of
        arrays, a long DataFrame with ``id_col``, stored series).
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
    tail : "pad", "drop" or "error"
        What to do with a series' last partial chunk and idle lane slots: pad them (sample weight 0),
        drop the partial chunks (reported in ``left_out``), or raise :class:`RemainderError`.
    pad_value : float
    shuffle : bool
        Many series: repack them into lanes in a new order every epoch (``seed``; drawn once when None).
        The number of batches stays the same every epoch.
    jitter : int
        Vary each batch's length in ``[timesteps - jitter, timesteps]`` every epoch, so chunk boundaries
        fall on different steps (needs ``keras.Input(batch_shape=(B, None, F))``).
    options, id_col, time_col, feature_cols, target_cols, dtype, allow_nan, allow_inf, gaps
        How the input is read: see :class:`~statebatch.InputOptions` (the keywords are its fields).
    static_cols, known_cols : lists of DataFrame columns, optional
        Covariates of a long frame: ``static_cols`` one value per series (numeric values, other columns as
        integer codes, vocabulary in ``arranged.covariates.static_vocab``), ``known_cols`` known in advance
        at every step. With either, every batch is a mapping ``past`` ``(B, T, F)``, ``future`` ``(B, T, K)``
        (at input step ``t`` the known values of its target step ``t + horizon``), ``static`` ``(B, S)``
        (the series each lane holds; idle lanes 0), ``y``, ``sample_weight``
        (:data:`~statebatch.results.lane_covariates.LANE_KEYS`).
    static_vocab : the training ``Arranged``/``Windows`` or their vocabulary, optional
        Codes of ``static_cols`` as in training, on a frame of fewer series (a value it lacks is refused).
    remainder : deprecated
        The old name of ``tail`` (a FutureWarning; removed in the next release).

    Returns
    -------
    Arranged

    Notes
    -----
    One in-memory series with ``tail="drop"`` gives a zero-copy view ``(n_batches, batch_size,
    timesteps, features)`` (``Arranged.batch_view``). Many in-memory series are packed lane by lane
    straight from each array (never concatenated first): an epoch of at most 256 MB
    (``PACK_AT_CONSTRUCTION_BYTES``) is packed here, where NaN/inf are checked on the packed lanes
    (the data is copied then; later changes to the arrays are not seen by that epoch), and batches
    are served from the lanes; ``X`` is the same epoch in batch order (one more copy).

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> a = sb.arrange_stateful(np.arange(12.0), timesteps=3, batch_size=2, targets=None)
    >>> a.n_batches, a.shape
    (2, (4, 3, 1))
    >>> a.batch(0)[0][:, :, 0]   # lane 0 holds steps 0-5, lane 1 steps 6-11
    array([[0., 1., 2.],
           [6., 7., 8.]])
    >>> a.batch(1)[0][:, :, 0]   # each lane continues where it stopped
    array([[ 3.,  4.,  5.],
           [ 9., 10., 11.]])
    """
    tail = _tail(tail, remainder)
    opts = InputOptions.resolve(options, id_col=id_col, time_col=time_col, feature_cols=feature_cols,
                                target_cols=target_cols, dtype=dtype, allow_nan=allow_nan, allow_inf=allow_inf,
                                gaps=gaps)
    timesteps = check_int("timesteps", timesteps, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    horizon = check_int("horizon", horizon, 1)
    return_sequences = check_bool("return_sequences", return_sequences)
    shuffle = check_bool("shuffle", shuffle)
    jitter = check_int("jitter", jitter, 0, timesteps - 1)
    seed = resolve_seed(seed)
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"pad_value must be a number, got {pad_value!r}.", "pass e.g. pad_value=0.0.")
    covariates = static_cols is not None or known_cols is not None or static_vocab is not None
    if covariates:  # the observed features are the columns that are no covariates
        data, opts, static_cols, known_cols = covariate_options(data, opts, static_cols, known_cols)
    ss = as_series(data, id_col=opts.id_col, time_col=opts.time_col, feature_cols=opts.feature_cols,
                   target_cols=opts.target_cols, dtype=opts.dtype, gaps=opts.gaps)
    ss = apply_gaps(ss, opts.gaps)
    nan, inf = opts.allow_nan, opts.allow_inf
    # Many in-memory float series: the NaN/inf check runs on the epoch packed into lanes (one pass, see
    # LaneEpochs.pack_checked) once the plan exists. Any error raised before then is preceded by the exact
    # check, so bad data is reported first, as when it is checked here.
    deferred = not (nan and inf) and packs_lanes(ss.source) and ss.dtype.kind in "fc"
    if deferred:
        if ss.targets is not None:
            check_finite_series(SeriesSet(ss.targets, ss.offsets, ss.ids, ss.target_names), what="target columns",
                                allow_nan=nan, allow_inf=inf)
    else:
        check_finite_series(ss, allow_nan=nan, allow_inf=inf)
    try:
        arranged = _arrange(ss, timesteps, batch_size, targets, horizon, return_sequences, tail, pad_value,
                            target_features, shuffle, seed, jitter, opts)
    except StatebatchError:
        if deferred:
            check_finite_series(SeriesSet(ss.source, ss.offsets, ss.ids, ss.feature_names), allow_nan=nan, allow_inf=inf)
        raise
    if deferred and not arranged._pack_checked():
        check_finite_series(SeriesSet(ss.source, ss.offsets, ss.ids, ss.feature_names), allow_nan=nan, allow_inf=inf)
    arranged._allow(nan, inf, checked=checked_finite(ss.source), lazy=not in_memory(ss.source))
    if covariates:
        arranged.covariates = build_lane_covariates(data, ss, static_cols=list(static_cols or []),
                                                    known_cols=list(known_cols or []), target_mode=arranged.target_mode,
                                                    shift=arranged._yshift, id_col=opts.id_col,
                                                    static_vocab=static_vocab)
    warn_padding(arranged.plan())
    return arranged


def _tail(tail: str, remainder: str | None) -> str:
    """``tail``, or the deprecated ``remainder`` (a FutureWarning; both at once only when they agree)."""
    if remainder is not None:
        warnings.warn("arrange_stateful(remainder=...) is renamed tail=... (windows keep remainder='keep'/'drop'); "
                      "remainder= is accepted until the next release.", FutureWarning, stacklevel=3)
        if tail != "pad" and tail != remainder:
            raise ParameterError(f"tail={tail!r} and remainder={remainder!r} are the same option given twice.",
                                 "pass tail= only.")
        tail = remainder
    return check_choice("tail", tail, TAILS)


def _arrange(ss: SeriesSet, timesteps: int, batch_size: int, targets: Any, horizon: int, return_sequences: bool,
             tail: str, pad_value: Any, target_features: Any, shuffle: bool, seed: int, jitter: int,
             opts: InputOptions) -> Arranged:
    """The targets and the :class:`Arranged` of checked series (the part of :func:`arrange_stateful` after the
    data's own checks)."""
    pad_value = check_pad_value(pad_value, ss.dtype)
    t = lane_targets(ss, targets, horizon=horizon, target_features=target_features, opts=opts)
    return Arranged(ss, timesteps=timesteps, batch_size=batch_size, target_mode=t.mode, ysource=t.source,
                    yshift=t.shift, horizon=horizon, return_sequences=return_sequences, tail=tail,
                    pad_value=pad_value, shuffle=shuffle, seed=seed, jitter=jitter)
