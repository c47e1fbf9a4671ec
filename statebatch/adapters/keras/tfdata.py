"""statebatch results as a ``tf.data.Dataset`` (TensorFlow only): static sizes where every batch has them,
batches handed over in blocks (one Python call per block, not per batch).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ...errors import ParameterError, StatebatchError
from ...results.batched import Batched
from ...results.bucketing import Bucketing
from ...results.schedule import InOrderGuard
from ...results.stateful import Arranged
from ...results.windows import Windows
from .datasets import Dataset, keras_item
from .losses import epoch_mean_weights, epoch_steps_per_sequence
from .loop_errors import _LAST_ERROR

__all__ = ["to_tf_dataset"]

_BLOCK_BYTES = 8 << 20      # to_tf_dataset: bytes of batches handed to tf.data per Python call
_MAX_BLOCK_BATCHES = 32


def _blocks(items: Iterator[Any], per_block: int, nest: Any = None) -> Iterator[Any]:
    """Stack runs of up to ``per_block`` consecutive batches of equal shapes: ``(m, *batch_shape)`` each. An item
    is a tuple of arrays, or (with ``nest``, ``tf.nest``) any structure of them: ``(inputs by name, y, w)``."""
    flat = (lambda item: tuple(item)) if nest is None else nest.flatten
    pending: list[tuple] = []
    shapes = template = None
    for item in items:
        leaves = flat(item)
        item_shapes = tuple(a.shape for a in leaves)
        if pending and (item_shapes != shapes or len(pending) == per_block):
            yield _stacked(pending, template, nest)
            pending = []
        pending.append(leaves)
        shapes, template = item_shapes, item
    if pending:
        yield _stacked(pending, template, nest)


def _stacked(pending: list[tuple], template: Any, nest: Any) -> Any:
    stacked = tuple(np.stack(parts) for parts in zip(*pending))
    return stacked if nest is None else nest.pack_sequence_as(template, list(stacked))


def _signature(tf: Any, result: Any, first: Any) -> Any:
    """The element spec of ``first`` (a batch as Keras takes it): sizes that vary from batch to batch ``None``."""
    varying_batch = isinstance(result, (Windows, Bucketing)) and (
        getattr(result, "remainder", "keep") == "keep" or getattr(result, "token_budget", None) is not None)
    varying_time = isinstance(result, Bucketing) or (isinstance(result, Arranged) and bool(result.jitter))

    def spec(path: str, a: np.ndarray) -> Any:
        shape = list(a.shape)
        if varying_batch:
            shape[0] = None
        # no time axis: a bucket's one target per sequence (y without return_sequences), a lane's static vector
        timeless = path.endswith("static") or (isinstance(result, Bucketing) and path == "1"
                                               and not result.return_sequences)
        if a.ndim >= 2 and varying_time and not timeless:
            shape[1] = None
        return tf.TensorSpec(shape=tuple(shape), dtype=tf.as_dtype(a.dtype))

    return _with_paths(spec, first, "")


def _with_paths(fn: Any, item: Any, path: str) -> Any:
    """``fn(path, array)`` over a batch's structure (tuples of arrays, dicts of inputs): path ``"0/static"``."""
    if isinstance(item, dict):
        return {k: _with_paths(fn, v, f"{path}/{k}".lstrip("/")) for k, v in item.items()}
    if isinstance(item, (tuple, list)):
        return tuple(_with_paths(fn, v, f"{path}/{j}".lstrip("/")) for j, v in enumerate(item))
    return fn(path, item)


def to_tf_dataset(data: Any, *, model: Any = None) -> Any:
    """A ``tf.data.Dataset`` of a result's batches: one epoch per iteration, in the result's order.

    Works for :class:`~statebatch.Windows`, :class:`~statebatch.Arranged` and
    :class:`~statebatch.Bucketing` (or their datasets). The element spec keeps every size that is
    the same in all batches static (a stateful model's batch size above all) and leaves the others
    ``None`` (a bucket's length, the last smaller batch). Each pass re-plans the next epoch; the
    cardinality is known and batches are prefetched. With ``steps_per_epoch`` (windows and buckets),
    pass ``to_tf_dataset(result).repeat()``: every pass is a fresh epoch, so no epoch runs out of data.
    Bucketed per-step targets carry the weights of :class:`BucketDataset` (``step_weights="epoch_mean"``).
    Lanes with covariates (``arrange_stateful(static_cols=..., known_cols=...)``) and forecasting windows
    give ``(inputs, y, sample_weight)`` (windows: ``(inputs, y)``), ``inputs`` a dict of tensors by batch key
    (``past``, ``future``, ``static``), or with ``model=`` exactly the model's inputs by name, as
    :class:`StatefulDataset` (``model=``) and :class:`WindowDataset` serve them.
    Needs TensorFlow (a statebatch error says so where it is not installed).

    Examples
    --------
    >>> import numpy as np, statebatch as sb
    >>> arranged = sb.arrange_stateful(np.arange(40.0), timesteps=5, batch_size=2)
    >>> ds = to_tf_dataset(arranged)  # (X, y, sample_weight) per batch, the lanes' batch size static
    >>> [tuple(spec.shape) for spec in ds.element_spec], int(ds.cardinality())
    ([(2, 5, 1), (2, 5, 1), (2, 5)], 4)
    """
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise ParameterError("to_tf_dataset needs TensorFlow, which is not installed.",
                             "feed Keras the statebatch dataset instead (StatefulDataset, WindowDataset, BucketDataset), "
                             "or pip install 'statebatch[tensorflow]'.") from exc

    result = data.result if isinstance(data, Dataset) else data
    if not isinstance(result, Batched):
        raise ParameterError(f"to_tf_dataset needs a statebatch result or dataset, got {type(data).__name__}.",
                             "pass make_windows(...), arrange_stateful(...) or bucket_batches(...).")
    batch0 = result.batch(0)
    mapping = isinstance(batch0, dict)
    if model is not None and (isinstance(data, Dataset) or not mapping):
        raise ParameterError("to_tf_dataset(model=) matches the inputs of mapping batches (lanes with covariates, "
                             "forecasting windows) by name; " + ("a dataset matches them itself." if mapping else
                                                                 "these batches have one input."),
                             "pass model= to the dataset (StatefulDataset(arranged, model=model))." if mapping
                             else "drop model=.")
    input_model = getattr(data, "_input_model", None) if isinstance(data, Dataset) else model
    first = keras_item(batch0, input_model)  # what every batch looks like, as Keras takes it
    nest = tf.nest if mapping else None
    signature = _signature(tf, result, first)
    dataset = data if isinstance(data, Dataset) else None
    guard = InOrderGuard() if dataset is None and isinstance(result, Arranged) else None

    def batches():
        try:
            yield from _batches()
        except StatebatchError as exc:
            _LAST_ERROR[0] = exc
            raise

    def _batches():
        if dataset is not None:  # the dataset serves (and guards) its batches, then moves to its next epoch
            yield from _blocks((dataset[k] for k in range(len(dataset))), per_block, nest)
            dataset.on_epoch_end()
            return
        epoch = result.epoch
        n = result.plan(epoch).n_batches
        block = result._block(0, min(n, per_block), epoch) if isinstance(result, Arranged) and n and not mapping \
            else None
        if block is not None:  # lanes in memory: each block is one gather (no per-batch work, no stacking)
            for k0 in range(0, n, per_block):
                k1 = min(n, k0 + per_block)
                for k in range(k0, k1):
                    guard.check(k)
                yield block if k0 == 0 else result._block(k0, k1, epoch)
        else:
            # bucketed per-step targets: the weights BucketDataset serves (epoch figures = real-step means)
            per_step = (epoch_steps_per_sequence(result.plan(epoch)) if isinstance(result, Bucketing)
                        and result._tsource is not None else None)

            def items():
                for k in range(n):
                    if guard is not None:
                        guard.check(k)
                    item = keras_item(result.batch(k, epoch), input_model)
                    yield item if per_step is None else item[:2] + (epoch_mean_weights(item[2], per_step),)

            yield from _blocks(items(), per_block, nest)
        if guard is not None:
            guard.reset()
        result.set_epoch(epoch + 1)

    # Batches travel in blocks of up to `per_block` consecutive same-shaped batches, stacked on a new
    # leading axis and split again by `unbatch` inside tf.data: one Python call per block instead of
    # one per batch (from_generator's per-element cost was ~0.5 ms, a few % of a small model's step).
    batch_bytes = sum(a.nbytes for a in tf.nest.flatten(first))
    per_block = max(1, min(_MAX_BLOCK_BATCHES, _BLOCK_BYTES // max(1, batch_bytes)))
    block_signature = tf.nest.map_structure(lambda s: tf.TensorSpec(shape=(None,) + tuple(s.shape), dtype=s.dtype),
                                            signature)
    plan = result.plan()
    ds = tf.data.Dataset.from_generator(batches, output_signature=block_signature).unbatch()
    fixed = not (isinstance(result, Bucketing) and result.token_budget is not None) and not (
        isinstance(result, Arranged) and result.jitter)
    if fixed:
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(dataset) if dataset is not None else plan.n_batches))
    return ds.prefetch(2)

