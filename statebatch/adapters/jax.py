"""JAX without Keras: statebatch results as a grain data source, and a lane loop for Flax carries.

Importing this module imports jax (and nothing else heavy; grain and flax are used only where given).

- :class:`BatchSource` serves a result's batches (windows, buckets or lanes) over ``epochs`` epochs as
  a grain ``RandomAccessDataSource``: record ``i`` is batch ``k`` of epoch ``e``, so the whole stream
  is a pure function of the result's seed and the epoch, and a grain ``DataLoader`` over it is
  deterministic and checkpointable (``get_state``/``set_state``) with a non-shuffling sampler
  (:func:`grain_loader`). Windows and buckets shard *batches* over processes (grain's
  ``ShardByJaxProcess``); lanes shard *lanes*: every process reads every batch, only its own block of
  ``batch_size / R`` lanes.
- :func:`lane_batches` and :func:`zero_rows` are the lane loop for a Flax recurrent model
  (``nnx.RNN(..., return_carry=True)``, or a ``flax.linen`` cell's carry): before each batch zero the
  carry rows of the lanes that start a new series, run the batch from the carry, keep the new carry.
  :class:`LaneIterator` is that loop's resumable position (``state_dict``/``load_state_dict``).

Both consume the framework-neutral lane feed :mod:`statebatch.feed`, as the torch adapter's
``LaneLoader`` does.
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from .._args import check_int
from ..errors import ParameterError
from ..results.feed import LaneStep, lane_block, lane_steps, plan_resets, real_step_weights
from ..results.batched import Batched
from ..results.stateful import Arranged

__all__ = ["BatchSource", "grain_loader", "lane_batches", "zero_rows", "LaneIterator"]


def _rows(x: Any, block: slice | None) -> Any:
    """This replica's lanes of ``x``: an array, or a dict of input arrays."""
    return {k: v[block] for k, v in x.items()} if isinstance(x, dict) else x[block]


def _process_shard() -> tuple[int, int]:
    return int(jax.process_count()), int(jax.process_index())


class BatchSource:
    """A statebatch result's batches over ``epochs`` epochs, as a grain random-access data source.

    Parameters
    ----------
    result : Windows, Bucketing or Arranged
    epochs : int
        Epochs served, one after the other (record ``i`` is batch ``k`` of epoch ``e`` in order).
    num_replicas, rank : int, optional
        Lanes only: serve lane block :func:`statebatch.feed.lane_block` of every batch (defaults: JAX's
        process count and index). Windows and buckets are sharded by batch with the sampler instead.

    Records are dicts of numpy arrays: ``"x"``, and ``"y"``, ``"weight"`` where the result has them;
    lanes add ``"reset"`` (bool ``(lanes,)``); every record has ``"epoch"`` and ``"batch"``. Lanes with
    covariates and forecasting windows: ``"x"`` is a dict of the input arrays (``past``, ``future``,
    ``static``; windows also ``mask``), windows' other keys (``y``, ``scale``...) sit next to it.

    Examples
    --------
    >>> import numpy as np, statebatch as sb
    >>> w = sb.make_windows(np.arange(40.0), timesteps=5, batch_size=8, shuffle=True, seed=0)
    >>> src = BatchSource(w, epochs=2)
    >>> len(src), src[0]["x"].shape, int(src[w.plan(0).n_batches]["epoch"])  # 5 batches per epoch
    (10, (8, 5, 1), 1)
    """

    def __init__(self, result: Any, *, epochs: int = 1, num_replicas: int | None = None, rank: int | None = None):
        result = getattr(result, "result", result)  # a Keras/torch dataset of a result
        if not isinstance(result, Batched):
            raise ParameterError(f"BatchSource needs a statebatch result, got {type(result).__name__}.",
                                 "pass make_windows(...), bucket_batches(...) or arrange_stateful(...).")
        self.result = result
        self.epochs = check_int("epochs", epochs, 1)
        count, index = _process_shard()
        if not isinstance(result, Arranged) and (num_replicas or 1) > 1:
            raise ParameterError("num_replicas/rank split lanes; windows and buckets are split by batch.",
                                 "leave them out and give grain_loader(..., shard=True) (grain's ShardByJaxProcess).")
        self.num_replicas = count if num_replicas is None else check_int("num_replicas", num_replicas, 1)
        self.rank = index if rank is None else check_int("rank", rank, 0)
        self.block: slice | None = None
        self._lanes = result if isinstance(result, Arranged) else None  # lanes are sharded by lane
        if self._lanes is not None:
            self.block = lane_block(self._lanes.batch_size, self.num_replicas, self.rank)
        # plans are pure functions of (seed, epoch): the batch count of every epoch is known up front
        counts = [result.plan(e).n_batches for e in range(self.epochs)]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._reset_cache: tuple[int, list[np.ndarray]] = (-1, [])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """``(epoch, batch)`` of record ``i``."""
        i = check_int("record", i)
        if not 0 <= i < len(self):
            raise ParameterError(f"record {i} is outside 0..{len(self) - 1}.", "ask for records below len(source).")
        e = int(np.searchsorted(self._offsets, i, side="right") - 1)
        return e, i - int(self._offsets[e])

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        epoch, k = self.locate(int(i))
        if self._lanes is not None:
            arrays = self._lanes.batch(k, epoch)
            if isinstance(arrays, dict):  # covariates: x the inputs by key, then y and the weights
                inputs = {key: arrays[key] for key in ("past", "future", "static") if key in arrays}
                arrays = (inputs,) + ((arrays["y"], arrays["sample_weight"]) if "y" in arrays else ())
            weight = arrays[2] if len(arrays) > 1 else real_step_weights(self._lanes, k, epoch)
            record = {"x": _rows(arrays[0], self.block), "weight": weight[self.block], "reset": self._resets(epoch)[k]}
            if len(arrays) > 1:
                record["y"] = arrays[1][self.block]
        else:
            arrays = self.result.batch(k, epoch)
            if isinstance(arrays, dict):  # forecasting windows: x the model inputs, the other keys as they are
                record = {"x": {key: arrays[key] for key in ("past", "future", "static", "mask") if key in arrays},
                          **{key: v for key, v in arrays.items() if key not in ("past", "future", "static", "mask")}}
            else:
                record = dict(zip(("x", "y", "weight"), arrays))
        record["epoch"] = np.asarray(epoch)
        record["batch"] = np.asarray(k)
        return record

    def _resets(self, epoch: int) -> list[np.ndarray]:
        """This replica's reset masks for every batch of ``epoch`` (the schedule runs once per epoch)."""
        if self._reset_cache[0] != epoch and self._lanes is not None:
            self._reset_cache = (epoch, [r[self.block] for _, r in plan_resets(self._lanes, epoch)])
        return self._reset_cache[1]

    def __repr__(self) -> str:
        return f"BatchSource({type(self.result).__name__}, {len(self)} batches over {self.epochs} epoch(s))"


def grain_loader(result: Any, *, epochs: int = 1, shard: bool | None = None, num_replicas: int | None = None,
                 rank: int | None = None, worker_count: int = 0) -> Any:
    """A grain ``DataLoader`` over :class:`BatchSource`: in plan order, checkpointable, sharded by process.

    The sampler never shuffles (the plan already did, by seed and epoch) and reads each record once.
    ``shard`` (default: for windows and buckets when JAX runs several processes) gives every process
    every ``process_count``-th batch (grain's ``ShardByJaxProcess``); lanes are sharded by lane in the
    source instead. ``iter(loader)`` has ``get_state()``/``set_state()``: restoring the state resumes
    with the next batch, exactly.

    Examples
    --------
    >>> import numpy as np, statebatch as sb
    >>> w = sb.make_windows(np.arange(40.0), timesteps=5, batch_size=8, shuffle=True, seed=0)
    >>> it = iter(grain_loader(w, epochs=2))
    >>> first = next(it)
    >>> state = it.get_state()
    >>> second = next(it)
    >>> it.set_state(state)  # resume after the first batch
    >>> np.array_equal(next(it)["x"], second["x"]), first["x"].shape
    (True, (8, 5, 1))
    """
    import grain

    source = BatchSource(result, epochs=epochs, num_replicas=num_replicas, rank=rank)
    if shard is None:
        shard = source.block is None and jax.process_count() > 1
    if shard and source.block is not None:
        raise ParameterError("lanes must not be sharded by batch: every process needs every batch of its lanes.",
                             "leave shard unset; the lanes are split with num_replicas/rank.")
    options = grain.sharding.ShardByJaxProcess(drop_remainder=True) if shard else grain.sharding.NoSharding()
    sampler = grain.samplers.IndexSampler(num_records=len(source), shard_options=options, shuffle=False,
                                          num_epochs=1)
    return grain.DataLoader(data_source=source, sampler=sampler, worker_count=check_int("worker_count", worker_count, 0))


def zero_rows(carry: Any, reset: Any) -> Any:
    """The carry with the rows of ``reset`` lanes zeroed; every leaf is ``(lanes, ...)``.

    Works on any pytree of arrays: an LSTM's ``(c, h)``, a GRU's ``h``, a stack's list of them.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> c, h = zero_rows((jnp.ones((3, 2)), jnp.ones((3, 2))), [False, True, False])
    >>> h.tolist()
    [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    """
    mask = np.asarray(reset)
    if mask.dtype != bool or mask.ndim != 1:
        raise ParameterError(f"reset must be a 1-D boolean mask with one flag per lane, got dtype {mask.dtype} and "
                             f"shape {mask.shape}.", "pass step.reset from lane_batches.")
    leaves = jax.tree_util.tree_leaves(carry)
    if not leaves:
        raise ParameterError("the carry holds no arrays.", "pass the carry the model returned (e.g. (c, h)).")
    for leaf in leaves:
        if getattr(leaf, "ndim", 0) < 1 or leaf.shape[0] != mask.shape[0]:
            raise ParameterError(f"a carry leaf of shape {getattr(leaf, 'shape', None)} has no row per lane "
                                 f"({mask.shape[0]} lanes).", "pass the carry of the model run on these lanes "
                                 "(initialise it for the lanes of this replica).")
    keep = jnp.asarray(~mask)
    return jax.tree_util.tree_map(lambda a: a * keep.reshape((-1,) + (1,) * (a.ndim - 1)).astype(a.dtype), carry)


class LaneIterator:
    """One replica's lane steps over epochs, resumable: ``state_dict()`` is ``(epoch, next batch)``.

    ``for step in LaneIterator(arranged)`` serves the current epoch (then moves the arrangement on, as
    the torch ``LaneLoader`` does). Save ``state_dict()`` together with the carry and the model; after
    a restart ``load_state_dict`` resumes with the next batch of the same epoch plan.
    """

    def __init__(self, arranged: Arranged, *, num_replicas: int = 1, rank: int = 0, reset_on_epoch_begin: bool = True):
        if not isinstance(arranged, Arranged):
            raise ParameterError(f"LaneIterator needs arranged lanes, got {type(arranged).__name__}.",
                                 "build them with statebatch.arrange_stateful(...).")
        self.arranged = arranged
        self.num_replicas, self.rank = num_replicas, rank
        lane_block(arranged.batch_size, num_replicas, rank)  # checks the split up front
        self.reset_on_epoch_begin = reset_on_epoch_begin
        self._next = 0

    def __iter__(self) -> Iterator[LaneStep]:
        epoch = self.arranged.epoch
        for step in lane_steps(self.arranged, epoch, num_replicas=self.num_replicas, rank=self.rank,
                               reset_on_epoch_begin=self.reset_on_epoch_begin, start=self._next):
            self._next = step.batch + 1
            yield step
        self._next = 0
        self.arranged.set_epoch(epoch + 1)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(self.arranged.epoch), "batch": int(self._next)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or set(state) != {"epoch", "batch"}:
            raise ParameterError("a LaneIterator state is a dict with the keys 'epoch' and 'batch'.",
                                 "pass what state_dict() returned.")
        epoch = check_int("epoch", state["epoch"], 0)
        batch = check_int("batch", state["batch"], 0, self.arranged.plan(epoch).n_batches)
        self.arranged.set_epoch(epoch)
        self._next = batch


def lane_batches(arranged: Arranged, epoch: int | None = None, *, num_replicas: int | None = None,
                 rank: int | None = None, reset_on_epoch_begin: bool = True) -> Iterator[LaneStep]:
    """One epoch of lanes for this process, as jax arrays: ``batch, x, y, weight, reset``.

    Lanes with covariates (``arrange_stateful(static_cols=..., known_cols=...)``): ``x`` is a dict of
    ``past``, ``future``, ``static`` (those present). Defaults shard the lanes over JAX's processes. Zero the carry rows of ``reset`` before each batch
    (:func:`zero_rows`); the loss is ``sum(weight * err) / sum(weight)`` over the real steps.

    Examples
    --------
    >>> import numpy as np, statebatch as sb
    >>> arranged = sb.arrange_stateful([np.arange(12.0), np.arange(6.0)], timesteps=3, batch_size=2)
    >>> steps = list(lane_batches(arranged))
    >>> steps[0].x.shape, [s.reset.tolist() for s in steps]  # doctest: +NORMALIZE_WHITESPACE
    ((2, 3, 1), [[True, True], [False, False], [False, False], [False, False]])
    """
    count, index = _process_shard()
    for step in lane_steps(arranged, epoch, num_replicas=count if num_replicas is None else num_replicas,
                           rank=index if rank is None else rank, reset_on_epoch_begin=reset_on_epoch_begin):
        # x: an array, or (lanes with covariates) a dict of past/future/static arrays
        yield LaneStep(step.batch, jax.tree_util.tree_map(jnp.asarray, step.x),
                       None if step.y is None else jnp.asarray(step.y), jnp.asarray(step.weight),
                       np.asarray(step.reset))
