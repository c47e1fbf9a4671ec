"""Keras 3 adapter: statebatch results as PyDatasets, and a callback that resets state per lane.

Importing this module imports keras. The epoch logic (which lanes reset before batch k, the
in-order guard, keeping validation state apart) lives in :mod:`statebatch.schedule`; this module only
maps it onto Keras: :class:`KerasState` exposes a model's recurrent state as a
:class:`~statebatch.schedule.StateHandle`, the datasets serve ``result.batch(k)``, and
:class:`LaneResetCallback` calls the schedule from Keras' callback hooks.

Keras 3 facts this module relies on (checked in the installed version, see tests and the shared
``KERAS_FACTS.md``):

- ``fit(shuffle=True)`` (the default) permutes a finite PyDataset's batch indices every epoch, so
  :class:`StatefulDataset` refuses out-of-order requests with a clear error.
- There is no ``Model.reset_states()`` and no per-row reset: :class:`KerasState` finds every stateful
  RNN layer (inside nested models, ``Bidirectional`` and stacks) and zeroes rows of its state
  variables with ``v.assign(v * keep)``.
- Validation inside ``fit`` runs the same stateful layers and overwrites their state: the callback
  saves the training state before validation and restores it afterwards.

Several devices: under JAX's ``keras.distribution.DataParallel`` the model is built for the global
batch and the lanes' states are sharded along it (:func:`track_state`); under TensorFlow's
``tf.distribute`` strategies the model is built per replica (:func:`model_batch_size`) and
:class:`KerasState` reads and writes each replica's consecutive block of lanes.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any, Iterator

import keras
import numpy as np

from .. import _introspect
from .._args import check_choice, check_int
from ..results.bucketing import Bucketing
from ..errors import (BatchIndexError, BatchSizeError, LengthMismatchError, ModelMismatchError, ParameterError, ShuffleError, StatebatchError,
                     StatebatchWarning, StatefulLayoutError, StoreError)
from ..results.batched import Batched
from ..results.schedule import (InOrderGuard, LaneSchedule, TrainingBackup, ValidationSchedule, check_save_freq, plan_fingerprint,
                       resets_of)
from ..results.stateful import Arranged
from ..results.windows import Windows

__all__ = ["Dataset", "WindowDataset", "StatefulDataset", "BucketDataset", "ShardDataset", "LaneResetCallback",
           "KerasState", "fit_stateful", "reset_rows", "stateful_layers", "check_model", "to_tf_dataset",
           "stateful_scope", "track_state", "untrack_state", "state_is_tracked", "predict", "use_real_step_loss",
           "replicas", "model_batch_size", "RealStepLoss", "check_real_step_loss", "evaluate", "epoch_mean_weights"]


# --------------------------------------------------------------------------- backends
# Two Keras 3 backends lose or break recurrent state inside fit/evaluate/predict (KERAS_FACTS.md,
# "Backends"); statebatch repairs both for the duration of its own calls (`stateful_scope`):
#
# - JAX: the trainer threads only `model.non_trainable_variables` through its jitted steps, and a
#   stateful RNN's state variables are not among them, so every batch starts from zero state. We
#   track them as non-trainable variables of their layer while statebatch drives the model, and untrack
#   them afterwards so saved weight files keep the layout of a plain model. Inside a loop the trainer
#   holds the live values; `jax_state_sync()` writes them back before we read or assign state.
# - torch: the layer assigns its new state with an in-place `copy_` into the tensor autograd saved for
#   the backward pass ("modified by an inplace operation"). We make the state variables' assignment
#   rebind a fresh tensor instead; the fast fused loop stays in use (2.7x faster than use_cudnn=False).
_TRACKED = "_statebatch_tracked"


def _backend() -> str:
    return keras.backend.backend()


def _sync(model: Any) -> None:
    """JAX: write the trainer's in-flight variable values back into the model's variables (no-op elsewhere)."""
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None and _backend() == "jax":
        sync()


def _rebind_assign(variable: Any) -> bool:
    import types

    import torch

    if getattr(variable, _TRACKED, False):
        return False
    if not hasattr(variable, "_direct_assign"):  # another Keras: fall back to the generic loop
        return False

    def _direct_assign(self, value):
        with torch.no_grad():
            self._value = torch.as_tensor(value, dtype=self._value.dtype).detach().clone().to(self._value.device)

    variable._direct_assign = types.MethodType(_direct_assign, variable)
    setattr(variable, _TRACKED, True)
    return True


def track_state(model: Any) -> list[Any]:
    """Make ``model``'s recurrent state carry from batch to batch inside ``fit``/``evaluate``/``predict``
    on the current Keras backend; returns what was changed (pass it to :func:`untrack_state`).

    TensorFlow needs nothing. JAX: the state variables become tracked non-trainable variables of their
    layers, so the JAX trainer threads them. torch: state assignment stops modifying tensors that
    autograd saved (the "inplace operation" error when fitting a stateful LSTM/GRU). Prefer
    :func:`stateful_scope`, which undoes the JAX part afterwards.
    """
    backend = _backend()
    changed: list[Any] = []
    if backend == "jax":
        _sync(model)
        for layer in stateful_layers(model):
            tracker = getattr(layer, "_tracker", None)
            if tracker is None:
                continue
            for v in _introspect.state_variables(layer):
                if tracker.is_in_store("non_trainable_variables", v):
                    continue
                locked = tracker.locked
                tracker.unlock()
                try:
                    layer._track_variable(v)
                finally:
                    if locked:
                        tracker.lock()
                setattr(layer, _TRACKED, True)
                changed.append((layer, v))
        if changed:
            _jax_distribute_state(model, [v for _, v in changed])
    elif backend == "torch":
        for layer in stateful_layers(model):
            variables = _introspect.state_variables(layer)
            changed.extend((layer, None) for v in variables if _rebind_assign(v))
            if not all(getattr(v, _TRACKED, False) for v in variables):
                layer.use_cudnn = False  # no private hook in this Keras: the generic loop is safe
            setattr(layer, _TRACKED, True)
    return changed


def untrack_state(model: Any, changed: list[Any]) -> None:
    """Undo the JAX part of :func:`track_state` (the torch repair is harmless and stays)."""
    if _backend() != "jax":
        return
    _sync(model)
    for layer, v in reversed(changed):
        if v is not None and layer._tracker.is_in_store("non_trainable_variables", v):
            layer._untrack_variable(v)
            layer.__dict__.pop(_TRACKED, None)
    if changed and keras.distribution.distribution() is not None:
        # the jitted steps were made for the tracked variables (their out_shardings list them): make
        # them anew at the next call (the Keras loop that used them has ended)
        model.train_function = model.test_function = model.predict_function = None


def _jax_distribute_state(model: Any, variables: list[Any]) -> None:
    """Under a Keras distribution on JAX (e.g. ``keras.distribution.DataParallel``), shard the newly
    tracked state variables along their batch axis, like the data, and re-make the jitted steps.

    Why: lane ``i`` of every batch lands on the device that holds rows ``i`` of the data, so its
    state ``(batch_size, units)`` belongs there too (each replica keeps its own ``B / R`` lanes); and
    the trainer fixes the shardings of every variable it threads (``out_shardings``) when it makes its
    jitted step, which Keras does before the first callback runs: a step made before the state was
    tracked has one sharding too few ("pytree structure error ... out_shardings").
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return
    from keras.src.backend.jax import distribution_lib as jax_distribution_lib

    for v in variables:
        layout = distribution.get_data_layout(tuple(v.shape))
        v._layout = layout
        v._value = jax_distribution_lib.distribute_tensor(v.value, layout)
    for name in ("train", "test", "predict"):
        if getattr(model, f"{name}_function", None) is not None:
            getattr(model, f"make_{name}_function")(force=True)


def state_is_tracked(model: Any) -> bool:
    """Whether every stateful layer of ``model`` carries state inside Keras loops on this backend."""
    if _backend() not in ("jax", "torch"):
        return True
    return all(getattr(layer, _TRACKED, False) for layer in stateful_layers(model))


@contextlib.contextmanager
def stateful_scope(model: Any) -> Iterator[Any]:
    """Within this block, Keras' ``fit``/``evaluate``/``predict`` carry ``model``'s recurrent state
    from batch to batch on every backend (see :func:`track_state`).

    statebatch's :class:`LaneResetCallback` and :func:`fit_stateful` do this themselves; use the block
    for plain Keras calls on a stateful model (e.g. ``model.predict(X, batch_size=B, shuffle=False)``)::

        with statebatch.keras.stateful_scope(model):
            model.fit(X, y, batch_size=B, shuffle=False)
    """
    changed = track_state(model)
    try:
        yield model
    finally:
        untrack_state(model, changed)


# --------------------------------------------------------------------------- state
def stateful_layers(model: Any) -> list[Any]:
    """Every stateful recurrent layer of ``model``, also inside nested models and wrappers."""
    return _introspect.stateful_layers(model)


def replicas(model: Any) -> int:
    """How many replicas each hold their own rows of ``model``'s state: the replicas of the
    ``tf.distribute`` strategy the model was built under on TensorFlow (each builds the model for
    ``batch_size / replicas`` rows), else 1 (JAX's ``keras.distribution`` shards one global state).
    """
    strategy = getattr(model, "distribute_strategy", None) if _backend() == "tensorflow" else None
    return int(getattr(strategy, "num_replicas_in_sync", 1) or 1)


def model_batch_size(arranged: Any, num_replicas: int | None = None) -> int:
    """The batch size to build a stateful model with for ``arranged`` under the current distribution.

    ``keras.Input(batch_shape=(model_batch_size(arranged), T, F))``: on TensorFlow inside a
    ``tf.distribute`` strategy's scope every replica runs the model on its own consecutive block of
    ``batch_size / replicas`` lanes (Keras splits each global batch that way), so the model is built for
    that block; elsewhere (one device, or JAX's ``keras.distribution.DataParallel``, which shards one
    global batch) for the whole ``batch_size``. ``num_replicas`` overrides the detected count.
    """
    batch_size = int(arranged.batch_size)
    if num_replicas is None:
        num_replicas = 1
        if _backend() == "tensorflow":
            import tensorflow as tf

            num_replicas = int(tf.distribute.get_strategy().num_replicas_in_sync)
    num_replicas = check_int("num_replicas", num_replicas, 1)
    if batch_size % num_replicas:
        raise BatchSizeError(f"batch_size={batch_size} lanes do not split evenly over {num_replicas} replicas.",
                             f"arrange with a batch_size divisible by {num_replicas} (e.g. "
                             f"{max(num_replicas, batch_size // num_replicas * num_replicas)}).")
    return batch_size // num_replicas


def _replica_parts(variable: Any) -> list[Any]:
    """The per-replica pieces of a state variable, in replica order (one piece off a strategy).

    Why: under ``tf.distribute.MirroredStrategy`` a stateful RNN's state is a mirrored variable whose
    copies are *not* kept equal: each replica's step assigns its own copy in replica context, so the
    copy on replica ``r`` holds lanes ``r * B/R .. (r + 1) * B/R - 1``. Reading ``variable.value`` would
    give replica 0's copy only, and assigning it would overwrite every replica with one value.
    """
    if _backend() == "tensorflow":
        parts = getattr(variable.value, "values", None)
        if isinstance(parts, (tuple, list)) and len(parts) > 1:
            return list(parts)
    return [variable]


class KerasState:
    """The recurrent state of a Keras model (or a list of its stateful layers) as a state handle.

    Reads and writes go through the variables' values (``keras.ops`` cannot take a JAX Variable),
    after the JAX trainer's in-flight values were written back (:func:`_sync`). Under a
    ``tf.distribute`` strategy each state variable's replicas hold consecutive blocks of lanes; the
    handle shows them as one ``(batch_size, units)`` state (see :func:`_replica_parts`).
    """

    def __init__(self, model_or_layers: Any):
        self.model = None if isinstance(model_or_layers, (list, tuple)) else model_or_layers
        self.layers = (list(model_or_layers) if isinstance(model_or_layers, (list, tuple))
                       else stateful_layers(model_or_layers))
        self.variables = [v for layer in self.layers for v in _introspect.state_variables(layer)]
        self._parts = [_replica_parts(v) for v in self.variables]

    @property
    def batch_size(self) -> int | None:
        return self.rows(0) if self.variables else None

    def rows(self, i: int) -> int:
        """Lanes held by state variable ``i`` over all replicas."""
        return sum(int(p.shape[0]) for p in self._parts[i])

    def _values(self) -> list[np.ndarray]:
        if self.model is not None:
            _sync(self.model)
        # the replica pieces are TensorFlow variables (read with .numpy()); a whole Keras variable is
        # read through its value
        return [np.concatenate([np.array(p.numpy()) for p in parts]) if len(parts) > 1
                else np.array(keras.ops.convert_to_numpy(parts[0].value)) for parts in self._parts]

    def _assign(self, i: int, value: np.ndarray) -> None:
        parts = self._parts[i]
        if len(parts) == 1:
            self.variables[i].assign(value)
            return
        for part, block in zip(parts, np.split(value, len(parts))):
            part.assign(block)

    def zero(self, rows: np.ndarray | None = None) -> None:
        for i, value in enumerate(self._values()):
            if rows is None:
                self._assign(i, np.zeros_like(value))
                continue
            rows = np.asarray(rows)
            if rows.size and rows.dtype != bool and not np.issubdtype(rows.dtype, np.integer):
                raise ParameterError(f"rows must be lane indices (integers) or a boolean mask, got dtype {rows.dtype}.",
                                     "pass e.g. rows=[0, 3] or a mask with one flag per lane.")
            if rows.dtype != bool:
                idx = rows.astype(np.int64)
                if idx.size and (idx.min() < 0 or idx.max() >= value.shape[0]):
                    raise ParameterError(f"rows {idx[(idx < 0) | (idx >= value.shape[0])][:5].tolist()} are outside the "
                                         f"{value.shape[0]} lanes of the model's state.",
                                         f"pass lane indices between 0 and {value.shape[0] - 1}.")
            elif rows.shape != (value.shape[0],):
                raise ParameterError(f"a boolean row mask needs shape ({value.shape[0]},), got {rows.shape}.",
                                     "pass one flag per lane.")
            value[rows] = 0
            self._assign(i, value)

    def snapshot(self) -> list[np.ndarray]:
        return self._values()

    def restore(self, snapshot: list[np.ndarray]) -> None:
        if self.model is not None:
            _sync(self.model)
        for i, value in enumerate(snapshot):
            self._assign(i, value)


def reset_rows(model_or_layers: Any, rows: Any = None) -> None:
    """Zero the recurrent state of some rows (lanes); all rows when ``rows`` is ``None``.

    Parameters
    ----------
    model_or_layers : keras.Model or list of layers
    rows : bool mask ``(batch_size,)`` or integer indices of the lanes to reset.
    """
    state = KerasState(model_or_layers)
    if not state.variables:
        raise ModelMismatchError(f"{type(model_or_layers).__name__} has no stateful recurrent layer whose state could be "
                                 "reset.", "pass a Keras model (or layers) built with stateful=True recurrent layers.")
    state.zero(None if rows is None else np.asarray(rows))


# --------------------------------------------------------------------------- datasets
# On TensorFlow, Keras runs a dataset's __getitem__ inside tf.data, which re-raises any exception as an
# InvalidArgumentError ("Graph execution error ... PyFunc") with the original message inside. The
# datasets record the statebatch error they raise, so that statebatch's own entry points
# (fit_stateful, predict) can raise the original instead.
_LAST_ERROR: list[StatebatchError | None] = [None]


def _recorded(getitem):
    @functools.wraps(getitem)
    def wrapper(self, k):
        try:
            return getitem(self, k)
        except StatebatchError as exc:
            _LAST_ERROR[0] = exc
            raise
    return wrapper


@contextlib.contextmanager
def _original_errors() -> Iterator[None]:
    """Re-raise a statebatch error that a Keras loop wrapped (see ``_LAST_ERROR``)."""
    _LAST_ERROR[0] = None
    try:
        yield
    except StatebatchError:
        raise
    except Exception as exc:
        recorded, _LAST_ERROR[0] = _LAST_ERROR[0], None
        if recorded is not None:
            raise recorded from exc
        raise


def _batch_index(k: Any, n: int) -> int:
    """A batch index of a dataset with ``n`` batches (a statebatch error that is also an IndexError)."""
    k = check_int("batch index", k)
    if not 0 <= k < n:
        raise BatchIndexError(f"batch {k} is outside 0..{n - 1} ({n} batches per epoch).",
                              "ask for batches 0 .. len(dataset) - 1.")
    return k


class Dataset(keras.utils.PyDataset):
    """Any statebatch result as a Keras ``PyDataset``: ``len`` = batches per epoch, item ``k`` =
    ``result.batch(k)``, and the result moves to its next epoch (reshuffled or re-planned) in
    ``on_epoch_end``. Arrangements (stateful lanes) refuse out-of-order requests.

    Parameters
    ----------
    result : Windows, Arranged or Bucketing
    **kwargs : passed to ``keras.utils.PyDataset`` (``workers``, ``use_multiprocessing``, ``max_queue_size``).
    """

    def __init__(self, result: Batched, **kwargs):
        if not isinstance(result, Batched):
            raise ParameterError(f"{type(self).__name__} needs a statebatch result, got {type(result).__name__}.",
                                 "build one with statebatch.make_windows, arrange_stateful or bucket_batches.")
        workers = check_int("workers", kwargs.get("workers", 1), 1)
        if kwargs.get("use_multiprocessing", False) and hasattr(result, "resets"):
            raise ParameterError("stateful batches cannot be served by several processes: each process would keep "
                                 "its own copy of the in-order guard.", "drop use_multiprocessing (threads are fine).")
        super().__init__(**kwargs)
        self.result = self.resets_source = result  # schedule.resets_of follows resets_source to the lanes
        # Keras' OrderedEnqueuer keeps up to max_queue_size batches in flight across `workers` threads
        self._guard = (InOrderGuard(workers=workers, lookahead=check_int("max_queue_size", kwargs.get("max_queue_size", 10), 1))
                       if hasattr(result, "resets") else None)
        self._n = result.n_batches
        self._start = 0  # load_state_dict: this pass serves batches _start.. of the epoch's plan
        self._next = 0   # the batch after the last one served

    def __len__(self) -> int:
        return self._n - self._start

    def _index(self, k: Any) -> int:
        """Item ``k`` of this pass as a batch index of the epoch's plan."""
        return _batch_index(k, len(self)) + self._start

    @_recorded
    def __getitem__(self, k: int):
        i = _batch_index(k, len(self))
        if self._guard is not None:
            self._guard.check(i)
        k = i + self._start
        self._next = k + 1
        batch = self.result.batch(k)
        if isinstance(batch, dict):  # forecasting windows: Keras takes (inputs by name, y)
            from ..materialise.forecast import split_xy

            return split_xy(batch, model=getattr(self, "_input_model", None))  # by the model's input names
        return batch

    # -- resuming (the torchdata StatefulDataLoader names, as statebatch.torch's loader)
    def state_dict(self) -> dict[str, int]:
        """Where this dataset stands: ``{"epoch": e, "batch": k, "n_batches": n, "seed": s}``, ``k`` the
        batch of epoch ``e``'s plan after the last one served. The plan is a pure function of the seed
        and the epoch, so this is the whole state. Inside a Keras loop batches are fetched ahead of
        training (``max_queue_size``); :func:`fit_stateful` records the trained batch itself."""
        return {"epoch": int(self.result.epoch), "batch": int(self._next), "n_batches": int(self._n),
                "seed": getattr(self.result, "seed", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at ``state`` (from :meth:`state_dict`): this pass serves batches ``k .. n-1`` of
        epoch ``e`` (``len`` is ``n - k``); the next pass serves the whole epoch ``e + 1``.

        Raises :class:`~statebatch.errors.ParameterError` for a malformed state, a batch outside the
        epoch, or a state saved with another seed or batch count.
        """
        if not isinstance(state, dict) or not {"epoch", "batch"} <= set(state):
            raise ParameterError(f"a dataset state is a dict with 'epoch' and 'batch', got {state!r}.",
                                 "pass what dataset.state_dict() returned.")
        epoch, batch = check_int("epoch", state["epoch"], 0), check_int("batch", state["batch"], 0)
        seed = getattr(self.result, "seed", None)
        if "seed" in state and state["seed"] != seed:
            raise ParameterError(f"the state was saved with seed {state['seed']!r}, this dataset's seed is {seed!r}: "
                                 "its epochs would serve other batches.", "build the result with the same seed.")
        n = self.result.plan(epoch).n_batches
        if "n_batches" in state and check_int("n_batches", state["n_batches"], 0) != n:
            raise ParameterError(f"the state was saved for {state['n_batches']} batches per epoch, this dataset has {n} "
                                 f"in epoch {epoch}.", "load the state into a dataset of the same data and arrangement.")
        if batch > n:
            raise ParameterError(f"batch {batch} is beyond the {n} batches of epoch {epoch}.",
                                 "pass what dataset.state_dict() returned.")
        if batch == n:  # the epoch was complete
            epoch, batch = epoch + 1, 0
        self.result.set_epoch(epoch)
        self._on_set_epoch()
        self._start = self._next = batch
        if self._guard is not None:
            self._guard.reset()

    def _on_set_epoch(self) -> None:
        self._n = self.result.n_batches

    def _resume_pending(self) -> bool:
        """A state was loaded and nothing served since: Keras calls ``on_epoch_end`` when it resets its epoch
        iterator before training (JAX, torch), which must not drop the loaded position."""
        return self._start > 0 and self._next == self._start

    def on_epoch_end(self) -> None:
        if self._resume_pending():
            return
        self._start = self._next = 0
        if self._guard is not None:
            self._guard.reset()
        self.result.set_epoch(self.result.epoch + 1)
        n = self.result.n_batches
        if n != self._n:  # a re-planned epoch with another batch count
            self._n = n


class WindowDataset(Dataset):
    """Windows from :func:`~statebatch.make_windows` as a Keras ``PyDataset`` (non-stateful models).

    Batching (``batch_size``, ``shuffle``, ``seed``, ``remainder``) is the windows' own; the window
    order is reshuffled every epoch when ``shuffle``. The fast replacement for
    ``keras.utils.timeseries_dataset_from_array`` inside ``fit``. Forecasting windows serve
    ``(inputs, y)`` (:func:`statebatch.forecast.split_xy`): with ``model=``, exactly the model's inputs
    by name (checked here); without, the model-input keys ``past``, ``future``, ``static``, ``mask``.
    """

    def __init__(self, windows: Windows, *, model: Any = None, **kwargs):
        if not isinstance(windows, Windows):
            raise ParameterError(f"WindowDataset needs statebatch Windows, got {type(windows).__name__}.",
                                 "build them with statebatch.make_windows(...).")
        if model is not None:  # refused now, not at the first batch inside fit
            from ..materialise.forecast import model_inputs

            if windows.forecast is None:
                raise ParameterError("model= matches forecasting inputs by name; these windows serve (X, y).",
                                     "drop model=, or build forecasting windows (known_cols=..., scale=...).")
            model_inputs(model, windows.forecast.keys)
        self._input_model = model
        super().__init__(windows, **kwargs)

    @property
    def windows(self) -> Windows:
        return self.result


#: StatefulDataset materialises an in-memory epoch of at most this many bytes (X and y) and serves its
#: batches as views: as cheap per batch as slicing arrays. Larger epochs are gathered batch by batch.
_EPOCH_CACHE_BYTES = 256 << 20


class StatefulDataset(Dataset):
    """Arranged lanes as a Keras ``PyDataset`` that yields batches strictly in order.

    Batch ``k`` is ``(X_k, y_k, sample_weight_k)`` (``(X_k,)`` without targets), each ``batch_size``
    rows, row ``i`` continuing row ``i`` of batch ``k-1``. Use with ``fit(..., shuffle=False)``,
    ``evaluate`` and ``predict``, together with :class:`LaneResetCallback`. A request out of order
    (``fit`` shuffles a PyDataset's batches unless ``shuffle=False``) raises
    :class:`~statebatch.errors.ShuffleError` instead of training on scrambled lanes.

    An in-memory epoch of at most 256 MB (X and y) is materialised when its first batch is asked for
    and its batches are served as read-only views (the arrangement keeps it, as ``arranged.X`` does);
    a larger or out-of-core one is read batch by batch.
    """

    def __init__(self, arranged: Arranged, *, resets: str = "callback", **kwargs):
        if not isinstance(arranged, Arranged):
            raise ParameterError(f"StatefulDataset needs an Arranged result, got {type(arranged).__name__}.",
                                 "build it with statebatch.arrange_stateful(...).")
        # "callback": a LaneResetCallback must be active when a batch starts new series in some lanes,
        # or the state of one series would leak into the next; "manual": the caller resets them.
        self.resets_by = check_choice("resets", resets, ("callback", "manual"))
        super().__init__(arranged, **kwargs)
        if arranged.batch_size == 1 and keras.backend.backend() == "tensorflow":
            warnings.warn(
                "batch_size=1: Keras' PyDataset adapter gives the TensorFlow backend an unknown batch size, which a "
                "stateful RNN with one lane rejects in fit ('enters the loop with shape (1, units)'). Use "
                "statebatch.keras.fit_stateful, statebatch.keras.to_tf_dataset(arranged), or arranged.fit_kwargs().",
                StatebatchWarning, stacklevel=2)

    @property
    def arranged(self) -> Arranged:
        return self.result

    @_recorded
    def __getitem__(self, k: int):
        if k == 0:  # a small in-memory epoch is materialised once and served as views (no gather per batch)
            self.result._cache_epoch(_EPOCH_CACHE_BYTES)
        out = super().__getitem__(k)
        k = int(k) + self._start  # the batch of the epoch's plan (after load_state_dict, item 0 is batch _start)
        if (self.resets_by == "callback" and k > 0 and self.result.__dict__.get("_resetting") is None
                and np.asarray(self.result.resets[k]).any()):
            lanes = np.flatnonzero(self.result.resets[k])[:5].tolist()
            raise StatefulLayoutError(
                f"batch {k} starts new series in lanes {lanes}, but no LaneResetCallback is resetting them: the state "
                "of the previous series in those lanes would flow into the new ones.",
                "pass callbacks=[statebatch.keras.LaneResetCallback(arranged)] to fit/predict/evaluate (or use "
                "statebatch.keras.fit_stateful); StatefulDataset(arranged, resets='manual') if you reset them yourself.")
        return out

    @property
    def batch_size(self) -> int:
        return self.result.batch_size

    @property
    def resets(self) -> np.ndarray:
        return self.result.resets


def _spec_safe_order(sizes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A batch order whose first two batches differ in every dimension that varies at all.

    Keras' PyDataset adapter on TensorFlow infers the element spec from batches 0 and 1 only (whatever
    order ``fit`` later draws): a size both share becomes static, and any later batch of another size
    fails ("generator yielded an element of shape (64, 75, 1) where (None, 50, 1) was expected").
    Such a pair always exists (if every pair shared a size or a length, one of them would be constant).
    The other batches keep their order.
    """
    n = len(sizes)
    order = np.arange(n)
    varies = [v for v in (sizes, lengths) if n and (v != v[0]).any()]
    if n < 3 or not varies:
        return order
    for a in range(n):
        ok = np.ones(n, bool)
        for v in varies:
            ok &= v != v[a]
        hits = np.flatnonzero(ok)
        if hits.size:
            b = int(hits[0])
            rest = order[(order != a) & (order != b)]
            return np.concatenate([[a, b], rest])
    return order  # unreachable (see above)


class BucketDataset(Dataset):
    """A :class:`~statebatch.Bucketing` as a Keras ``PyDataset``: one epoch per pass, re-bucketed and
    reshuffled in ``on_epoch_end``.

    Each batch is ``(X[, y[, sample_weight]])`` padded to its longest member; use a model built with
    ``keras.Input(shape=(None, features))`` and a ``Masking`` layer or the per-timestep weights.
    Item ``k`` is batch ``order[k]`` of the epoch's plan: the first two items differ in length (and in
    size, where sizes vary), because Keras on TensorFlow derives the shapes it accepts from them. For
    per-step predictions (which Keras cannot concatenate across lengths on JAX and torch) use
    :func:`predict`, which returns them per sequence in the original order.
    With a token budget the batch count would change between epochs, which Keras does not allow
    within one ``fit``; then membership stays that of the first epoch and only the order changes.

    Per-step targets: the sample weights are 0 on padding and, on the real steps of a batch of ``n_k``
    sequences padded to ``T_k`` steps, ``T_k * N / R`` (``N`` sequences and ``R`` real steps in the
    epoch). Keras averages batch figures in two ways, both of which these weights make the exact mean
    over the epoch's real steps: the loss shown is the mean of the batch losses weighted by
    ``n_k``, and a weighted metric sums ``sum_t(w * value) / T_k`` and ``sum_t(w) / T_k`` per sequence.
    The loss is exact with :class:`RealStepLoss` (any model) or with Keras' default reduction on an
    output without a Keras mask; ``"mean_with_sample_weight"`` and masked outputs (a ``Masking`` layer)
    give batch means, see :func:`check_real_step_loss`. ``step_weights="unit"`` serves plain 1/0.

    Parameters
    ----------
    bucketing : Bucketing
    epoch : int, optional
        Serve this epoch's plan on every pass, never moving to the next (evaluation: the same batches on
        every ``evaluate`` call). Default: the bucketing's current epoch, re-bucketed after each pass.
    step_weights : "epoch_mean" or "unit"
        The per-step sample weights described above (default), or 1 on real steps and 0 on padding.
    **kwargs : passed to ``keras.utils.PyDataset``.
    """

    def __init__(self, bucketing: Bucketing, *, epoch: int | None = None, step_weights: str = "epoch_mean", **kwargs):
        if not isinstance(bucketing, Bucketing):
            raise ParameterError(f"BucketDataset needs a statebatch Bucketing, got {type(bucketing).__name__}.",
                                 "build it with statebatch.bucket_batches(...).")
        self.fixed_epoch = None if epoch is None else check_int("epoch", epoch, 0)
        self.step_weights = check_choice("step_weights", step_weights, STEP_WEIGHTS)
        super().__init__(bucketing, **kwargs)
        self._first = bucketing.plan(self.fixed_epoch)
        self._shuffle_budget = np.arange(self._first.n_batches)
        self._plan_order()

    @property
    def bucketing(self) -> Bucketing:
        return self.result

    def _epoch(self) -> int:
        return self.result.epoch if self.fixed_epoch is None else self.fixed_epoch

    def _plan(self):
        return self._first if self.result.token_budget is not None else self.result.plan(self._epoch())

    def _plan_order(self) -> None:
        plan = self._plan()
        base = self._shuffle_budget if self.result.token_budget is not None else np.arange(plan.n_batches)
        sizes = np.array([len(plan.batches[j]) for j in base])
        lengths = np.asarray(plan.padded_lengths)[base]
        self.order = base[_spec_safe_order(sizes, lengths)]
        self._n = len(self.order)
        # Every batch of this epoch has one length, but other epochs' batches may not (the sequences'
        # lengths vary): Keras on TensorFlow would take that length as static from items 0 and 1 and
        # fail at a later epoch's batch. Item 1 gets one more padded step (weight 0) so that the
        # time axis stays free; padded steps change no real step's output or loss.
        self._widen = (len(lengths) > 1 and (lengths == lengths[0]).all()
                       and int(np.min(self.result.lengths)) != int(np.max(self.result.lengths)))
        self._per_step = (epoch_steps_per_sequence(plan) if self.step_weights == "epoch_mean"
                          and self.result._tsource is not None else None)

    @_recorded
    def __getitem__(self, k: int):
        k = self._index(k)
        self._next = k + 1
        j = int(self.order[k])
        b = self.result
        self._served = (self.order, self._first.epoch if b.token_budget is not None else self._epoch())
        if b.token_budget is None:
            out = b.batch(j, self._epoch())
        else:
            out = b.materialise(self._first.batches[j], int(self._first.padded_lengths[j])).as_tuple()
        if self._widen and k == 1:
            out = self._one_more_step(out)
        if self._per_step is not None and len(out) == 3:
            out = out[:2] + (epoch_mean_weights(out[2], self._per_step),)
        return out

    def _one_more_step(self, out: tuple) -> tuple:
        """The batch with one more padded step on its time axis (at the end, or at the start with
        ``padding="pre"``): X, per-step targets and per-step weights (0 there)."""
        b = self.result
        per_step = [True, bool(b.return_sequences), len(out) > 2 and np.ndim(out[2]) == 2]
        widened = []
        for a, timed in zip(out, per_step):
            if timed:
                pad = np.full((a.shape[0], 1) + a.shape[2:], 0 if a is out[-1] and len(out) > 2 else b.pad_value,
                              dtype=a.dtype)
                a = np.concatenate([pad, a] if b.padding == "pre" else [a, pad], axis=1)
            widened.append(a)
        return tuple(widened)

    def unbatch(self, outputs: Any):
        """Outputs of this epoch's items (a list, one array per item, in item order) per sequence, in
        the original order: see :meth:`statebatch.Bucketing.unbatch`."""
        order, epoch = getattr(self, "_served", (self.order, self._epoch()))  # the epoch last served
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(order):
            got = f"a list of {len(outputs)}" if isinstance(outputs, (list, tuple)) else type(outputs).__name__
            raise LengthMismatchError(f"outputs must be a list with one array per item ({len(order)}), got {got}.",
                                      "collect model.predict_on_batch(dataset[k][0]) for k in range(len(dataset)), "
                                      "or use statebatch.keras.predict(model, dataset).")
        in_plan = [None] * len(outputs)
        for k, j in enumerate(order):
            in_plan[int(j)] = outputs[k]
        return self.result.unbatch(in_plan, epoch=epoch)

    def on_epoch_end(self) -> None:
        if self.fixed_epoch is not None:  # evaluation: the same plan on every pass
            return
        if self._resume_pending():
            return
        self._start = self._next = 0
        b = self.result
        b.set_epoch(b.epoch + 1)
        self._on_set_epoch()

    def _on_set_epoch(self) -> None:
        # the item order of an epoch is a pure function of the seed and the epoch (load_state_dict relies on it)
        b = self.result
        if b.token_budget is not None:
            self._shuffle_budget = (np.arange(self._first.n_batches) if b.epoch == self._first.epoch else
                                    np.random.default_rng((b.seed, b.epoch, 7)).permutation(self._first.n_batches))
        self._plan_order()


class ShardDataset(keras.utils.PyDataset):
    """Batches written by :func:`statebatch.store.write_batches`, read back one at a time, in order.

    For arranged lanes, out-of-order requests raise :class:`~statebatch.errors.ShuffleError` as in
    :class:`StatefulDataset` (pass ``shuffle=False``); windows may be shuffled by ``fit``.
    """

    def __init__(self, shards: Any, **kwargs):
        from ..sources.npy import BatchShards

        workers = check_int("workers", kwargs.get("workers", 1), 1)
        super().__init__(**kwargs)
        self.shards = self.resets_source = shards if isinstance(shards, BatchShards) else BatchShards(shards)
        self._guard = (InOrderGuard(workers=workers, lookahead=check_int("max_queue_size", kwargs.get("max_queue_size", 10), 1))
                       if self.shards.resets is not None else None)

    @property
    def batch_size(self) -> int:
        return self.shards.batch_size

    def __len__(self) -> int:
        return len(self.shards)

    @_recorded
    def __getitem__(self, k: int):
        k = _batch_index(k, len(self.shards))
        if self._guard is not None:
            self._guard.check(k)
        return self.shards.batch(k)

    def on_epoch_end(self) -> None:
        if self._guard is not None:
            self._guard.reset()


# --------------------------------------------------------------------------- the callback
class LaneResetCallback(keras.callbacks.Callback):
    """Reset recurrent state per lane: all lanes at the start of every epoch, and before each batch
    only the lanes that start a new series there.

    Parameters
    ----------
    data : Arranged or StatefulDataset (or batch shards of an arrangement)
        The training (or, for a standalone ``evaluate``/``predict``, the evaluated) arrangement.
    validation_data : Arranged or StatefulDataset, optional
        The arrangement used as ``validation_data`` in ``fit``. Training state is saved before
        validation and restored after it. Validation starts from zero state and resets its own lanes;
        the validation part of :meth:`Arranged.split` replays each series' training part (weight 0)
        before its held-out steps, so those start from the state the series' history leads to.
    reset_on_epoch_begin : bool
        Zero all lanes at the start of every epoch (default). With ``False`` state also flows from
        the end of one epoch into the next.
    """

    def __init__(self, data: Any, validation_data: Any = None, *, reset_on_epoch_begin: bool = True):
        super().__init__()
        self.train = LaneSchedule(data, reset_on_epoch_begin=reset_on_epoch_begin)
        self.batch_size = self.train.batch_size
        self.validation = None
        if validation_data is not None:
            self.validation = ValidationSchedule(validation_data)
            if self.validation.lanes.batch_size != self.batch_size:
                raise BatchSizeError(
                    f"validation data is arranged with batch_size={self.validation.lanes.batch_size} but training "
                    f"data with {self.batch_size}; a stateful model has one fixed batch size.",
                    f"arrange the validation series with batch_size={self.batch_size}.")
        self.reset_on_epoch_begin = reset_on_epoch_begin
        self._state: KerasState | None = None
        self._in_fit = False
        self._tracked: list[list] = []  # what each running fit/evaluate/predict made track_state change

    @property
    def resets_done(self) -> int:
        return self.train.resets_done

    def _begin(self) -> KerasState:
        """Start of fit/evaluate/predict: carry state on this backend, and find it."""
        self._tracked.append(track_state(self.model))
        return self._find_state()

    def _end(self) -> None:
        if self._tracked:
            untrack_state(self.model, self._tracked.pop())

    def _find_state(self) -> KerasState:
        state = KerasState(self.model)
        if not state.layers:
            raise StatefulLayoutError("the model has no stateful recurrent layer to reset.",
                                      "build the RNN layers with stateful=True, or drop LaneResetCallback.")
        r = replicas(self.model)
        for i, v in enumerate(state.variables):
            if state.rows(i) != self.batch_size:
                layer = next(la for la in state.layers if any(w is v for w in _introspect.state_variables(la)))
                per = f" ({r} replicas of {int(v.shape[0])})" if r > 1 else ""
                raise BatchSizeError(
                    f"layer {layer.name!r} keeps {state.rows(i)} parallel states{per} but the data has "
                    f"{self.batch_size} lanes.",
                    f"build the model with keras.Input(batch_shape=(statebatch.keras.model_batch_size(arranged), T, "
                    f"F)), i.e. ({self.batch_size // r if self.batch_size % r == 0 else self.batch_size}, T, F)"
                    + (f" inside the strategy's scope: each of the {r} replicas runs its own block of lanes" if r > 1
                       else "") + ".")
        spe = getattr(self.model, "steps_per_execution", 1)
        spe = int(getattr(spe, "numpy", lambda: spe)()) if not isinstance(spe, int) else spe
        if spe != 1 and np.asarray(self.train.result.resets)[1:].any():
            raise ParameterError(
                f"steps_per_execution={spe}: Keras calls batch callbacks once per {spe} batches, so lanes cannot be "
                "reset before the right batch.", "compile the model with steps_per_execution=1.")
        self._state = state
        return state

    def _check_steps(self, what: str) -> None:
        steps = (self.params or {}).get("steps")
        n = self.train.n_batches()
        if steps is not None and int(steps) != n:
            raise ParameterError(
                f"{what} runs {steps} steps per epoch but the arrangement this LaneResetCallback resets has {n} "
                "batches: its resets would fall on the wrong batches.",
                "give the callback the arrangement the dataset serves, and leave steps_per_epoch / steps unset (one "
                "epoch is every batch of the arrangement).")

    def _resetting(self, on: bool) -> None:
        """Tell the datasets of these arrangements that their resets are taken care of."""
        for result in (self.train.result, getattr(getattr(self.validation, "lanes", None), "result", None)):
            if result is not None and hasattr(result, "__dict__"):
                result.__dict__["_resetting"] = self if on else None

    # -- fit
    def on_train_begin(self, logs=None):
        self._check_steps("fit")
        self._in_fit = True
        self._begin()
        self._resetting(True)
        self._warn_diluted_loss()

    def _warn_diluted_loss(self) -> None:
        if getattr(self, "weights_normalised", False):  # fit_stateful on replicas: weights average 1
            return
        compiled = getattr(self.model, "_compile_loss", None)
        reductions = {getattr(e.loss, "reduction", None) for e in (getattr(compiled, "_flat_losses", None) or [])}
        results = [self.train.result] + ([self.validation.lanes.result] if self.validation is not None else [])
        padding = max(float(getattr(r, "padding_fraction", 0.0)) for r in results)
        if padding > 0 and reductions - {REAL_STEP_REDUCTION, None}:
            warnings.warn(f"{padding:.1%} of the steps are padding (sample weight 0), and the model's loss divides by "
                          "all steps, so reported losses are diluted by the padding: call "
                          "statebatch.keras.use_real_step_loss(model) before fit (fit_stateful does), or compile with "
                          "reduction='mean_with_sample_weight'.", StatebatchWarning, stacklevel=2)

    def on_train_end(self, logs=None):
        self._in_fit = False
        self._resetting(False)
        self._end()

    def on_epoch_begin(self, epoch, logs=None):
        self.train.epoch_begin(self._state, epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self.train.batch_begin(self._state, batch)

    # -- evaluate (also validation inside fit)
    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._check_steps("evaluate")
            self._begin()
            self._resetting(True)
        if self._in_fit:
            if self.validation is None:
                raise ParameterError(
                    "fit runs validation on the stateful model, but LaneResetCallback was not given the validation "
                    "arrangement, so it cannot reset its lanes or keep its state apart.",
                    "pass LaneResetCallback(train, validation_data=val) (or use statebatch.keras.fit_stateful).")
            self.validation.begin(self._state)
        else:
            self._state.zero(None)

    def on_test_batch_begin(self, batch, logs=None):
        if self._in_fit:
            self.validation.batch_begin(self._state, batch)
        else:  # a standalone evaluate of `data`, from zero state
            self.train.batch_begin(self._state, batch)

    def on_test_end(self, logs=None):
        if self._in_fit and self.validation is not None:
            self.validation.end(self._state)
        if not self._in_fit:
            self._resetting(False)
            self._end()

    # -- predict
    def on_predict_begin(self, logs=None):
        self._check_steps("predict")
        self._begin().zero(None)
        self._resetting(True)

    def on_predict_end(self, logs=None):
        self._resetting(False)
        self._end()

    def on_predict_batch_begin(self, batch, logs=None):
        self.train.batch_begin(self._state, batch)


# --------------------------------------------------------------------------- losses over real steps
REAL_STEP_REDUCTION = "mean_with_sample_weight"


def use_real_step_loss(model: Any) -> int:
    """Make a compiled model's loss a mean over real (non-padded) steps; returns the losses changed.

    statebatch pads (idle lanes, series ends, buckets) with sample weight 0. Keras' default reduction
    (``"sum_over_batch_size"``) divides by every step, padding included, so a reported loss is the
    true mean times (1 - padding fraction) and the gradient shrinks with it. ``"mean_with_sample_weight"``
    divides each batch's loss by the sum of its weights: the mean over its real steps. (The epoch figure
    Keras prints is then the mean of these batch means; for the exact mean over all real steps of an
    epoch of lanes, whose batches share one length, add ``weighted_metrics=["mse"]`` (or your metric) to
    ``compile``: weighted metrics accumulate sums and weights. Bucketed sequences need
    :class:`RealStepLoss` instead, see :class:`BucketDataset`.) Same as compiling with
    ``loss=keras.losses.MeanSquaredError(reduction="mean_with_sample_weight")``, for a model compiled
    already; :func:`fit_stateful` calls it.
    """
    return _set_reduction(model, REAL_STEP_REDUCTION)


def _compiled_loss(model: Any) -> Any:
    """The model's compiled loss container, built (its per-output losses exist)."""
    compiled = getattr(model, "_compile_loss", None)
    if compiled is None:
        raise ParameterError("the model is not compiled with a loss.", "call model.compile(optimizer=..., loss=...) first.")
    if not compiled.built:
        outputs = model.outputs
        y = outputs[0] if len(outputs) == 1 else outputs
        compiled.build(y, y)
    return compiled


def _set_reduction(model: Any, reduction: str) -> int:
    """Set every compiled loss of ``model`` to ``reduction``; returns how many changed."""
    compiled = _compiled_loss(model)
    changed = 0
    for entry in compiled._flat_losses:
        loss = entry.loss
        if loss is not None and getattr(loss, "reduction", None) != reduction:
            loss.reduction = reduction
            changed += 1
    if changed:  # traced train/test steps captured the old reduction
        model.train_function = None
        model.test_function = None
    return changed


STEP_WEIGHTS = ("epoch_mean", "unit")


def epoch_steps_per_sequence(plan: Any) -> float:
    """Real steps per sequence over the sequences an epoch's :class:`~statebatch.plans.BucketPlan` serves."""
    served = [np.asarray(b) for b in plan.batches]
    n = sum(len(b) for b in served)
    steps = sum(int(np.asarray(plan.lengths)[b].sum()) for b in served)
    return steps / n if n else 1.0


def epoch_mean_weights(unit: np.ndarray, steps_per_sequence: float) -> np.ndarray:
    """Per-step weights that make Keras' epoch figures means over all real steps of the epoch.

    Parameters
    ----------
    unit : ndarray ``(batch, T_k)``, 1 on real steps and 0 on padding
    steps_per_sequence : float, ``R / N`` (real steps and sequences in the epoch)

    Returns
    -------
    ndarray ``(batch, T_k)``: ``unit * T_k * N / R``, float32.

    Why this scale: Keras shows a loss as the mean of batch losses weighted by the batch's rows
    ``n_k``, and with the default reduction (no output mask) a batch loss is ``sum(w * loss) /
    (n_k * T_k)``: the epoch figure is ``sum_k sum(w * loss) / T_k / N``. A weighted metric keeps per
    sequence ``mean_t(w * value)`` and ``mean_t(w)``, so it is ``sum_k sum(w * value) / T_k`` over
    ``sum_k sum(w) / T_k``. Both are the mean over the real steps when ``w = T_k * N / R``; with 1/0
    weights every batch would count with ``1 / T_k`` (the batches of short sequences too much).
    """
    scale = unit.shape[1] / steps_per_sequence if unit.ndim >= 2 else 1.0
    return (unit * np.float32(scale)).astype(np.float32, copy=False)


@keras.saving.register_keras_serializable(package="statebatch")
class RealStepLoss(keras.losses.Loss):
    """A Keras loss whose epoch figure over a :class:`BucketDataset` is the exact mean over real steps.

    Wraps any per-step loss (``"mse"``, ``"sparse_categorical_crossentropy"``, a ``keras.losses.Loss``,
    a function). With sample weights, each batch's loss is ``sum(w * loss) / (batch * T_k)`` whether or
    not the model's output carries a Keras mask: the weights already zero the padding, and Keras'
    default reduction would instead divide a masked output by its unmasked steps (a per-batch mean,
    which Keras then averages per sequence, not per step). Together with the weights of
    :class:`BucketDataset` (``step_weights="epoch_mean"``) the loss ``fit``/``evaluate`` report is the mean
    over the epoch's real steps, and the training gradient gives every real step the same weight.
    Without sample weights it is Keras' default (the mean, masks respected).

    ``model.compile(optimizer, loss=statebatch.keras.RealStepLoss("mse"), weighted_metrics=["mse"])``
    """

    def __init__(self, loss: Any = "mean_squared_error", name: str | None = None, dtype: Any = None):
        inner = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
        if isinstance(inner, RealStepLoss):
            inner = inner.inner
        if not callable(inner):
            raise ParameterError(f"RealStepLoss needs a Keras loss, got {loss!r}.",
                                 "pass a loss name such as 'mse', a keras.losses.Loss or a function (y_true, y_pred).")
        self.inner = inner  # a Loss (its unreduced .call) or a function returning per-step values
        inner_name = getattr(inner, "name", None) or getattr(inner, "__name__", "loss")
        super().__init__(name=name or f"real_step_{inner_name}", reduction="sum_over_batch_size", dtype=dtype)

    def call(self, y_true, y_pred):
        return self.inner.call(y_true, y_pred) if isinstance(self.inner, keras.losses.Loss) else self.inner(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is None:
            return super().__call__(y_true, y_pred)
        ops = keras.ops
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
        values = self.call(y_true, y_pred)  # per step; a Keras mask on y_pred is deliberately not applied
        w = ops.cast(ops.convert_to_tensor(sample_weight), values.dtype)
        if len(w.shape) == len(values.shape) + 1 and w.shape[-1] == 1:
            w = ops.squeeze(w, axis=-1)
        while len(w.shape) < len(values.shape):
            w = ops.expand_dims(w, axis=-1)
        count = ops.cast(ops.prod(ops.convert_to_tensor(ops.shape(values), dtype="int32")), values.dtype)
        return ops.divide_no_nan(ops.sum(values * w), count)

    def get_config(self):
        return {"name": self.name, "loss": keras.losses.serialize(self.inner), "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("reduction", None)
        return cls(loss=keras.losses.deserialize(config.pop("loss")), **config)


def check_real_step_loss(model: Any) -> list[str]:
    """Why the loss ``model`` reports over a :class:`BucketDataset` with per-step targets would not be
    the mean over real steps (an empty list when it is); weighted metrics are exact in every case.

    Exact: :class:`RealStepLoss`, or Keras' default reduction (``"sum_over_batch_size"``) on an output
    that carries no Keras mask. Not exact: ``"mean_with_sample_weight"`` (each batch's mean over its
    real steps, then the mean of those weighted by the batch's sequences), the default reduction on a
    masked output (``Masking``, ``mask_zero``: Keras divides by the unmasked steps, the same batch
    mean), ``"sum"`` and ``None``. Checks the compiled losses and, for the mask, the model's outputs.
    """
    compiled = _compiled_loss(model)
    # a functional model's symbolic outputs carry the mask Keras will apply (subclassed models: unknown)
    masked = [getattr(o, "_keras_mask", None) is not None for o in (getattr(model, "outputs", None) or [])]
    flat = compiled._flat_losses
    problems = []
    for i, entry in enumerate(flat):
        loss = entry.loss
        if loss is None or isinstance(loss, RealStepLoss):
            continue
        reduction = getattr(loss, "reduction", None)
        if reduction != "sum_over_batch_size":
            problems.append(f"loss {entry.name!r} uses reduction={reduction!r}: Keras reports a mean of per-batch "
                            "figures, not the mean over real steps")
        elif masked[i] if len(masked) == len(flat) else any(masked):
            problems.append(f"loss {entry.name!r} is computed on an output with a Keras mask: Keras divides each "
                            "batch by its unmasked steps, so it reports a mean of batch means")
    return problems


def evaluate(model: Any, data: Any, *, epoch: int | None = None, **evaluate_kwargs) -> Any:
    """``model.evaluate`` over bucketed sequences: the same batches on every call, and figures that are
    means over real steps, or a :class:`~statebatch.errors.StatebatchWarning` naming the loss that is not.

    Parameters
    ----------
    model : compiled keras.Model
    data : Bucketing or BucketDataset
    epoch : int, optional
        The plan to evaluate (default: the bucketing's current epoch). A ``Bucketing`` is not moved to its
        next epoch (``model.evaluate(BucketDataset(bk))`` moves it, re-bucketing the next call).
    **evaluate_kwargs : passed to ``model.evaluate`` (``verbose``, ``return_dict``, ``callbacks``...).
    """
    if isinstance(data, BucketDataset):
        ds = data if epoch is None and data.fixed_epoch is not None else BucketDataset(
            data.result, epoch=data._epoch() if epoch is None else epoch, step_weights=data.step_weights)
    elif isinstance(data, Bucketing):
        ds = BucketDataset(data, epoch=data.epoch if epoch is None else epoch)
    else:
        raise ParameterError(f"statebatch.keras.evaluate takes bucketed sequences, got {type(data).__name__}.",
                             "pass statebatch.bucket_batches(...) or its BucketDataset (other data: model.evaluate).")
    if ds._per_step is not None:
        problems = check_real_step_loss(model)
        if problems:
            warnings.warn("the loss evaluate reports is not the mean over real steps: " + "; ".join(problems) + ". Compile "
                          "with loss=statebatch.keras.RealStepLoss(<your loss>) (or the default reduction on an output "
                          "without a Keras mask); weighted_metrics are exact either way.", StatebatchWarning, stacklevel=2)
    evaluate_kwargs.setdefault("verbose", 0)
    with _original_errors():
        return model.evaluate(ds, **evaluate_kwargs)


# --------------------------------------------------------------------------- fitting
def check_model(model: Any, arranged: Arranged) -> None:
    """Fail early when ``model`` cannot run ``arranged`` statefully (batch size, timesteps, features)."""
    from ..checking.validate import validate

    if not stateful_layers(model):
        raise StatefulLayoutError("the model has no stateful recurrent layer.",
                                  "build the RNN layers with stateful=True and "
                                  f"keras.Input(batch_shape={arranged.batch_shape}).")
    shape = _introspect.input_shape(model)
    if shape is not None and shape[1] is not None:
        if arranged.jitter:
            raise ModelMismatchError(
                f"the model expects exactly {shape[1]} timesteps but jitter={arranged.jitter} varies the batch length.",
                f"build the model with keras.Input(batch_shape=({arranged.batch_size}, None, {arranged.n_features})).")
        if shape[1] != arranged.timesteps:
            raise ModelMismatchError(
                f"the model expects {shape[1]} timesteps but the lanes are cut into chunks of {arranged.timesteps}.",
                f"arrange with timesteps={shape[1]} or build the model with keras.Input(batch_shape="
                f"({arranged.batch_size}, None, {arranged.n_features})).")
    _check_distributed(model)
    r = replicas(model)
    per_replica = model_batch_size(arranged, r)  # raises when the lanes do not split over the replicas
    if r > 1 and shape is not None and shape[0] not in (None, per_replica):
        raise ModelMismatchError(
            f"the model runs on {r} replicas of a tf.distribute strategy, each on its own block of "
            f"{per_replica} of the {arranged.batch_size} lanes, but it was built for batches of {shape[0]}.",
            f"build it inside strategy.scope() with keras.Input(batch_shape=({per_replica}, "
            f"{arranged.timesteps if not arranged.jitter else None}, {arranged.n_features})) "
            "(statebatch.keras.model_batch_size(arranged) gives the batch size).")
    first = arranged.batch(0)
    # Under a tf.distribute strategy each replica runs the model on its own block of lanes: check one.
    validate(*(a[:per_replica] for a in first[:2]), model=model, batch_size=per_replica,
             stateful=True, shuffle=False, emit_warnings=False)


def _check_distributed(model: Any) -> None:
    """Refuse Keras on torch under ``torch.distributed``: Keras 3 has no data parallelism there, so
    every process would train every lane of its own copy of the model."""
    if _backend() != "torch":
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise ParameterError(
            f"Keras on the torch backend does not split batches over the {dist.get_world_size()} processes of "
            "torch.distributed: each process would train every lane.",
            "train with statebatch.torch (LaneLoader(arranged, num_replicas=R, rank=r) and StateCarrier, in a "
            "torch DistributedDataParallel model), or run Keras on JAX with keras.distribution.DataParallel or on "
            "TensorFlow with tf.distribute.MirroredStrategy.")


def fit_stateful(model: Any, train: Arranged | StatefulDataset, *, epochs: int = 1,
                 validation: Arranged | StatefulDataset | None = None,
                 callbacks: list | None = None, reset_on_epoch_begin: bool = True, real_step_loss: bool = True,
                 backup_dir: Any = None, save_freq: int | str = "epoch", **fit_kwargs):
    """``model.fit`` on arranged lanes, done right: validated first, in order, with lane resets, and
    (``real_step_loss``) losses that are means over real steps, not diluted by padding
    (:func:`use_real_step_loss`; this changes the compiled model's loss reduction).

    On the TensorFlow backend the batches go through :func:`to_tf_dataset` (static batch size,
    needed for ``batch_size=1``); elsewhere through the PyDataset. Returns ``History``.

    Parameters
    ----------
    backup_dir : str or path, optional
        Resumable training, in the manner of ``keras.callbacks.BackupAndRestore`` but exact in the
        middle of an epoch: every ``save_freq`` batches (or after every epoch with ``"epoch"``) the
        position ``(epoch, next batch)``, the weights, the optimizer's variables, the metrics' running
        sums and every stateful layer's lane states are written atomically to one file in
        ``backup_dir`` (:class:`~statebatch.schedule.TrainingBackup`). When the same call finds a
        backup, it restores it and trains on from the next batch (the epoch's plan is a pure function of
        the seed and the epoch), ending with what an uninterrupted run ends with. A backup written for
        another model (layer classes, weight and state shapes, optimizer), other data or another
        arrangement is refused (:class:`~statebatch.errors.StoreError`). The backup is removed when
        training finishes. A resumed epoch runs as a separate ``model.fit`` (your callbacks see it
        begin and end); validation of an epoch interrupted after its last batch is not rerun.
    save_freq : int or "epoch"
        How often the backup is written: every ``save_freq`` training batches, or after each epoch.
    """
    epochs = check_int("epochs", epochs, 1)
    train_arr = train.arranged if isinstance(train, StatefulDataset) else train
    val_arr = validation.arranged if isinstance(validation, StatefulDataset) else validation
    if not isinstance(train_arr, Arranged):
        raise ParameterError(f"fit_stateful needs arranged lanes, got {type(train).__name__}.",
                             "pass statebatch.arrange_stateful(...) (or its StatefulDataset).")
    if fit_kwargs.get("shuffle", False):
        raise ShuffleError("shuffle=True scrambles lanes of a stateful model.", "leave shuffle out (False).")
    fit_kwargs.pop("shuffle", None)
    save_freq = check_save_freq(save_freq)
    for cb in callbacks or []:
        if isinstance(cb, keras.callbacks.BackupAndRestore):
            # it restores weights at an epoch start but not the lanes' states or the position inside
            # an epoch's plan: a resumed run silently ends elsewhere than an uninterrupted one
            raise ParameterError(
                "keras.callbacks.BackupAndRestore does not save the lanes' recurrent states or the position in "
                "the epoch's plan, so a run it resumes ends with other weights than an uninterrupted one.",
                "drop it and pass fit_stateful(..., backup_dir=DIR, save_freq=N): exact resumption mid-epoch.")
    if backup_dir is not None and "initial_epoch" in fit_kwargs:
        raise ParameterError("initial_epoch cannot be combined with backup_dir: the backup says where training "
                             "stands.", "leave initial_epoch out (a fresh run starts at epoch 0).")
    check_model(model, train_arr)
    if val_arr is not None and val_arr.batch_size != train_arr.batch_size:
        raise BatchSizeError(f"validation lanes ({val_arr.batch_size}) differ from training lanes "
                             f"({train_arr.batch_size}).", "arrange both with the same batch_size.")
    # Under a tf.distribute strategy each replica reduces the loss over its own block of lanes and the
    # gradients are summed: "mean_with_sample_weight" would average per-replica means (blocks with
    # more padding would count more). Instead the weights of each global batch are scaled to average 1
    # and the loss divides by every step ("sum_over_batch_size"): the same real-step mean of the global
    # batch, split over replicas exactly.
    normalise = real_step_loss and _backend() == "tensorflow" and replicas(model) > 1
    if normalise:
        _set_reduction(model, "sum_over_batch_size")
    elif real_step_loss:  # where no weight is 0 this changes nothing: the sum of the weights is the step count
        use_real_step_loss(model)

    def lanes_callback(cls: type = LaneResetCallback, **kwargs) -> LaneResetCallback:
        cb = cls(train_arr, val_arr, reset_on_epoch_begin=reset_on_epoch_begin, **kwargs)
        cb.weights_normalised = normalise
        return cb

    def feed(data):
        if normalise:
            # Under a strategy Keras takes one batch of a tf.data pass to build the model and
            # abandons the pass; the PyDataset serves batches by index, so no epoch is consumed.
            if isinstance(data, _WeightsAverageOne):
                return data
            ds = _WeightsAverageOne(data.arranged if isinstance(data, StatefulDataset) else data)
            if isinstance(data, StatefulDataset):
                ds.load_state_dict(data.state_dict())  # a resumed epoch keeps its position
            return ds
        if keras.backend.backend() == "tensorflow":
            return to_tf_dataset(data)
        if isinstance(data, StatefulDataset):
            return data
        with warnings.catch_warnings():  # the batch_size=1 warning: handled right here
            warnings.simplefilter("ignore")
            return StatefulDataset(data)

    def run(data, lanes_cb, backup_cb, **kwargs):
        with _original_errors():
            return model.fit(feed(data), shuffle=False, validation_data=None if validation is None else feed(validation),
                             callbacks=[lanes_cb] + ([backup_cb] if backup_cb else []) + list(callbacks or []),
                             **kwargs)

    if backup_dir is None:
        return run(train, lanes_callback(), None, epochs=epochs, **fit_kwargs)

    backup = TrainingBackup(backup_dir, {
        "model": _model_signature(model),
        "data": plan_fingerprint(train_arr, reset_on_epoch_begin=bool(reset_on_epoch_begin),
                                 real_step_loss=bool(real_step_loss)),
        "validation": "none" if val_arr is None else plan_fingerprint(val_arr)})
    epoch, batch, metrics, histories = 0, 0, None, []
    if backup.exists():
        header, arrays = backup.load()
        epoch, batch = header["epoch"], header["batch"]
        if epoch > epochs or (epoch == epochs and batch > 0):
            raise ParameterError(f"the backup in {str(backup.directory)!r} stands at epoch {epoch}, batch {batch}, "
                                 f"beyond epochs={epochs}.", f"pass epochs > {epoch}, or another backup_dir to start over.")
        _restore_training(model, arrays, str(backup.path))
        metrics = arrays.get("metrics")
    if batch > 0:  # the rest of the interrupted epoch, from the restored state
        ds = train if isinstance(train, StatefulDataset) else None
        if ds is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = StatefulDataset(train_arr)
        ds.load_state_dict({"epoch": epoch, "batch": batch})
        lanes_cb = lanes_callback(_ResumedLaneCallback, offset=batch)
        histories.append(run(ds, lanes_cb, _BackupCallback(backup, save_freq, train_arr, offset=batch, metrics=metrics),
                             epochs=epoch + 1, initial_epoch=epoch, **fit_kwargs))
        epoch += 1
    if epoch < epochs:
        train_arr.set_epoch(epoch)
        if isinstance(train, StatefulDataset):
            train.load_state_dict({"epoch": epoch, "batch": 0})
        histories.append(run(train, lanes_callback(), _BackupCallback(backup, save_freq, train_arr), epochs=epochs, initial_epoch=epoch,
                             **fit_kwargs))
    backup.remove()
    return _merged_history(model, histories)


# --------------------------------------------------------------------------- resuming
def _weight_variables(model: Any) -> list[Any]:
    """The model's variables (weights, seed generators) without the recurrent state variables, which are
    saved apart (on JAX they are tracked as non-trainable variables during statebatch's loops)."""
    states = {id(v) for v in KerasState(model).variables}
    return [v for v in model.variables if id(v) not in states]


def _model_signature(model: Any) -> str:
    """Structure, not names (a model rebuilt in a fresh process gets other auto-generated names)."""
    import hashlib
    import json

    layers = [type(layer).__name__ for layer in model._flatten_layers(include_self=False)]
    shapes = [[list(map(int, v.shape)), str(v.dtype)] for v in _weight_variables(model)]
    states = [list(map(int, v.shape)) for v in KerasState(model).variables]
    optimizer = type(getattr(model, "optimizer", None)).__name__
    text = json.dumps({"layers": layers, "weights": shapes, "states": states, "optimizer": optimizer})
    return hashlib.sha256(text.encode()).hexdigest()


def _numpy(variables: list[Any]) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


def _assign(variables: list[Any], values: list[np.ndarray], what: str, where: str) -> None:
    if len(variables) != len(values) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise StoreError(f"the training backup {where!r} holds {len(values)} {what} that do not match the model's "
                         f"{len(variables)} (count or shapes differ).",
                         f"resume with the model of the interrupted run, or delete {where} to start over.")
    for v, a in zip(variables, values):
        v.assign(a)


def _restore_training(model: Any, arrays: dict[str, list[np.ndarray]], where: str) -> None:
    """Put weights, optimizer variables and lane states of a backup back into ``model`` (before ``fit``)."""
    _sync(model)
    _assign(_weight_variables(model), arrays.get("weights", []), "weights", where)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        if not optimizer.built:  # its variables (moments, iteration count) exist only once built
            optimizer.build(model.trainable_variables)
        _assign(list(optimizer.variables), arrays.get("optimizer", []), "optimizer variables", where)
    state = KerasState(model)
    _assign(state.variables, arrays.get("states", []), "lane states", where)


class _BackupCallback(keras.callbacks.Callback):
    """Writes :func:`fit_stateful`'s backup: after every ``save_freq`` batches, or after each epoch."""

    def __init__(self, backup: TrainingBackup, save_freq: int | str, arranged: Arranged, *, offset: int = 0,
                 metrics: list[np.ndarray] | None = None):
        super().__init__()
        self.backup, self.save_freq, self.arranged = backup, save_freq, arranged
        self.offset = offset  # a resumed epoch: fit's batch 0 is batch `offset` of the epoch's plan
        self._metrics = metrics  # running metric sums at the interrupted batch, put back when the epoch begins
        self._since = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._metrics is not None:  # Keras reset them just before; the resumed epoch continues the sums
            _sync(self.model)
            _assign(list(self.model.metrics_variables), self._metrics, "metric variables", str(self.backup.path))
            self._metrics = None

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._since += 1
        if self._since >= self.save_freq:
            self._since = 0
            self._save(self._epoch, int(batch) + self.offset + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.offset = 0
        if self.save_freq == "epoch":
            self._save(epoch + 1, 0)

    def _save(self, epoch: int, batch: int) -> None:
        if batch >= self.arranged.plan(epoch).n_batches:  # the epoch's batches are done
            epoch, batch = epoch + 1, 0
        model = self.model
        _sync(model)  # JAX: the trainer holds the live values
        optimizer = getattr(model, "optimizer", None)
        arrays = {"weights": _numpy(_weight_variables(model)),
                  "optimizer": _numpy(list(optimizer.variables)) if optimizer is not None else [],
                  "states": KerasState(model).snapshot(),
                  }
        if batch > 0:  # within an epoch: the metrics' running sums, so that the resumed epoch reports the same figures
            arrays["metrics"] = _numpy(list(model.metrics_variables))
        self.backup.save(epoch, batch, arrays, backend=_backend())


class _ResumedLaneCallback(LaneResetCallback):
    """:class:`LaneResetCallback` for the rest of an interrupted epoch: fit's batch ``i`` is batch
    ``offset + i`` of the epoch's plan, and the restored lane states are not zeroed when it begins."""

    def __init__(self, *args: Any, offset: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.offset = offset

    def _check_steps(self, what: str) -> None:
        steps = (self.params or {}).get("steps")
        if steps is not None and int(steps) != self.train.n_batches() - self.offset:
            raise ParameterError(f"{what} runs {steps} steps for the rest of an epoch of {self.train.n_batches()} "
                                 f"batches resumed at batch {self.offset}.", "leave steps_per_epoch unset.")

    def on_epoch_begin(self, epoch, logs=None):
        self.train.result.set_epoch(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self.train.batch_begin(self._state, int(batch) + self.offset)


def _merged_history(model: Any, histories: list[Any]) -> Any:
    """One ``History`` for the fits of a resumed run (the rest of the interrupted epoch, then the others)."""
    if len(histories) == 1:
        return histories[0]
    merged = keras.callbacks.History()
    merged.set_model(model)
    merged.epoch, merged.history, merged.params = [], {}, {}
    for h in histories:
        merged.epoch.extend(h.epoch)
        for key, values in h.history.items():
            merged.history.setdefault(key, []).extend(values)
        merged.params = h.params
    return merged


class _WeightsAverageOne(StatefulDataset):
    """Batches whose sample weights are scaled to average 1 over the batch (an all-padding batch stays 0):
    with the ``"sum_over_batch_size"`` reduction the loss is the batch's real-step mean, also when the
    batch is split over replicas (see :func:`fit_stateful`)."""

    def __getitem__(self, k: int):
        out = super().__getitem__(k)
        if len(out) < 3:
            return out
        w = np.asarray(out[2])
        total = float(w.sum(dtype=np.float64))
        return (*out[:2], (w * (w.size / total)).astype(w.dtype) if total > 0 else w)


def predict(model: Any, data: Any, *, callbacks: list | None = None, verbose: int = 0) -> Any:
    """Predictions in the original order, on every backend: per window, per sequence or per series.

    Parameters
    ----------
    model : keras.Model
    data : Windows, Bucketing or Arranged (or their datasets)

    Returns
    -------
    Windows: ndarray ``(n_windows, ...)`` (:meth:`Windows.unbatch`). Bucketing: a list of
    ``(length_i, ...)`` arrays for per-step outputs, else ``(n_sequences, ...)``
    (:meth:`Bucketing.unbatch`); batches run one by one, so outputs of different lengths never need
    concatenating (Keras' ``predict`` cannot on JAX and torch). Arranged: a list with one
    ``(length_i, ...)`` array per series, run with :class:`LaneResetCallback` (:meth:`Arranged.unbatch`).
    """
    result = data.result if isinstance(data, Dataset) else data
    if isinstance(result, Arranged):
        ds = data if isinstance(data, StatefulDataset) else StatefulDataset(result, resets="callback")
        cb = LaneResetCallback(result)
        # Keras' TensorFlow adapter reads the first batches (to infer their spec) before any callback
        # runs; this callback will reset their lanes, so the dataset may hand them out.
        cb._resetting(True)
        try:
            with _original_errors():
                out = model.predict(ds, callbacks=[cb] + list(callbacks or []), verbose=verbose)
        finally:
            cb._resetting(False)
        return result.unbatch(out)
    if isinstance(result, Bucketing):
        ds = data if isinstance(data, BucketDataset) else BucketDataset(result)
        return ds.unbatch([np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(ds[k][0])))
                           for k in range(len(ds))])
    if isinstance(result, Windows):
        epoch = result.epoch
        outs = [np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(result.batch(k, epoch)[0])))
                for k in range(result.plan(epoch).n_batches)]
        return result.unbatch(outs, epoch=epoch)
    raise ParameterError(f"predict needs a statebatch result or dataset, got {type(data).__name__}.",
                         "pass make_windows(...), bucket_batches(...) or arrange_stateful(...).")


_BLOCK_BYTES = 8 << 20      # to_tf_dataset: bytes of batches handed to tf.data per Python call
_MAX_BLOCK_BATCHES = 32


def _blocks(items: Iterator[tuple], per_block: int) -> Iterator[tuple]:
    """Stack runs of up to ``per_block`` consecutive batches of equal shapes: ``(m, *batch_shape)`` each."""
    pending: list[tuple] = []
    shapes = None
    for item in items:
        item_shapes = tuple(a.shape for a in item)
        if pending and (item_shapes != shapes or len(pending) == per_block):
            yield tuple(np.stack(parts) for parts in zip(*pending))
            pending = []
        pending.append(item)
        shapes = item_shapes
    if pending:
        yield tuple(np.stack(parts) for parts in zip(*pending))


def to_tf_dataset(data: Any):
    """A ``tf.data.Dataset`` of a result's batches: one epoch per iteration, in the result's order.

    Works for :class:`~statebatch.Windows`, :class:`~statebatch.Arranged` and
    :class:`~statebatch.Bucketing` (or their datasets). The element spec keeps every size that is
    the same in all batches static (a stateful model's batch size above all) and leaves the others
    ``None`` (a bucket's length, the last smaller batch). Each pass re-plans the next epoch; the
    cardinality is known and batches are prefetched. With ``steps_per_epoch`` (windows and buckets),
    pass ``to_tf_dataset(result).repeat()``: every pass is a fresh epoch, so no epoch runs out of data.
    Bucketed per-step targets carry the weights of :class:`BucketDataset` (``step_weights="epoch_mean"``).
    Needs TensorFlow (a statebatch error says so where it is not installed).
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
    first = result.batch(0)
    if isinstance(first, dict):
        raise ParameterError("to_tf_dataset serves (X, y) batches; forecasting windows' batches are mappings.",
                             "feed Keras statebatch.keras.WindowDataset(windows) (batches as (inputs by name, y)).")
    static = [list(a.shape) for a in first]
    plan = result.plan()
    varying_batch = isinstance(result, (Windows, Bucketing)) and (
        getattr(result, "remainder", "keep") == "keep" or getattr(result, "token_budget", None) is not None)
    for j, a in enumerate(first):
        if varying_batch:
            static[j][0] = None
        if a.ndim >= 2 and (isinstance(result, Bucketing) or (isinstance(result, Arranged) and result.jitter)):
            if not (isinstance(result, Bucketing) and j == 1 and not result.return_sequences):
                static[j][1] = None
    signature = tuple(tf.TensorSpec(shape=tuple(s), dtype=tf.as_dtype(a.dtype)) for s, a in zip(static, first))
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
            yield from _blocks((dataset[k] for k in range(len(dataset))), per_block)
            dataset.on_epoch_end()
            return
        epoch = result.epoch
        n = result.plan(epoch).n_batches
        block = result._block(0, min(n, per_block), epoch) if isinstance(result, Arranged) and n else None
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
                    item = result.batch(k, epoch)
                    yield item if per_step is None else item[:2] + (epoch_mean_weights(item[2], per_step),)

            yield from _blocks(items(), per_block)
        if guard is not None:
            guard.reset()
        result.set_epoch(epoch + 1)

    # Batches travel in blocks of up to `per_block` consecutive same-shaped batches, stacked on a new
    # leading axis and split again by `unbatch` inside tf.data: one Python call per block instead of
    # one per batch (from_generator's per-element cost was ~0.5 ms, a few % of a small model's step).
    batch_bytes = sum(a.nbytes for a in first)
    per_block = max(1, min(_MAX_BLOCK_BATCHES, _BLOCK_BYTES // max(1, batch_bytes)))
    block_signature = tuple(tf.TensorSpec(shape=(None,) + tuple(s.shape), dtype=s.dtype) for s in signature)
    ds = tf.data.Dataset.from_generator(batches, output_signature=block_signature).unbatch()
    fixed = not (isinstance(result, Bucketing) and result.token_budget is not None) and not (
        isinstance(result, Arranged) and result.jitter)
    if fixed:
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(dataset) if dataset is not None else plan.n_batches))
    return ds.prefetch(2)
