"""Every Keras-backend difference statebatch repairs or relies on, in one place.

Two Keras 3 backends lose or break recurrent state inside fit/evaluate/predict (KERAS_FACTS.md,
"Backends"); statebatch repairs both for the duration of its own calls (:func:`stateful_scope`):

- JAX: the trainer threads only ``model.non_trainable_variables`` through its jitted steps, and a
  stateful RNN's state variables are not among them, so every batch starts from zero state. We
  track them as non-trainable variables of their layer while statebatch drives the model, and untrack
  them afterwards so saved weight files keep the layout of a plain model. Inside a loop the trainer
  holds the live values; :func:`sync_trainer` (the one sync) writes them back before state is read
  or assigned.
- torch: the layer assigns its new state with an in-place ``copy_`` into the tensor autograd saved for
  the backward pass ("modified by an inplace operation"). We make the state variables' assignment
  rebind a fresh tensor instead; the fast fused loop stays in use (2.7x faster than use_cudnn=False).

TensorFlow needs no repair, but its ``tf.distribute`` strategies keep one copy of each state variable
per replica (:func:`replica_parts`, :func:`strategy_replicas`), and its PyDataset adapter leaves the
batch size unknown (:func:`needs_static_batch_feed`). No other module of statebatch asks which
backend runs.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Iterator

import keras

from ... import _introspect
from ...errors import ParameterError

__all__ = ["backend", "sync_trainer", "track_state", "untrack_state", "state_is_tracked", "stateful_scope",
           "replica_parts", "strategy_replicas", "current_replicas", "needs_static_batch_feed", "check_distributed"]

_TRACKED = "_statebatch_tracked"


def backend() -> str:
    """The name of the Keras backend that runs (``"tensorflow"``, ``"jax"`` or ``"torch"``).

    Examples
    --------
    >>> backend() in ("tensorflow", "jax", "torch")
    True
    """
    return str(keras.backend.backend())


def sync_trainer(model: Any) -> None:
    """JAX: write the trainer's in-flight variable values back into ``model``'s variables (no-op elsewhere).

    Why: inside a JAX ``fit``/``evaluate``/``predict`` the trainer holds the live values of every
    variable it threads (the tracked lane states among them) and writes them back only at the end;
    reading or assigning state in a callback must see, and not be overwritten by, those values. This
    is the only place statebatch syncs.

    Examples
    --------
    >>> import keras
    >>> sync_trainer(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))  # nothing in flight
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None and backend() == "jax":
        sync()


def _rebind_assign(variable: Any) -> bool:
    """torch: make ``variable.assign`` rebind a fresh tensor (not ``copy_`` into one autograd saved)."""
    import torch

    if getattr(variable, _TRACKED, False):
        return False
    if not hasattr(variable, "_direct_assign"):  # another Keras: fall back to the generic loop
        return False

    def _direct_assign(self: Any, value: Any) -> None:
        with torch.no_grad():
            self._value = torch.as_tensor(value, dtype=self._value.dtype).detach().clone().to(self._value.device)

    variable._direct_assign = types.MethodType(_direct_assign, variable)
    setattr(variable, _TRACKED, True)
    return True


def _track_jax(model: Any) -> list[Any]:
    """JAX: track each stateful layer's state variables as its non-trainable variables."""
    changed: list[Any] = []
    sync_trainer(model)
    for layer in _introspect.stateful_layers(model):
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
    return changed


def _track_torch(model: Any) -> list[Any]:
    """torch: state assignment rebinds (or, where this Keras has no hook, the generic loop runs)."""
    changed: list[Any] = []
    for layer in _introspect.stateful_layers(model):
        variables = _introspect.state_variables(layer)
        changed.extend((layer, None) for v in variables if _rebind_assign(v))
        if not all(getattr(v, _TRACKED, False) for v in variables):
            layer.use_cudnn = False  # no private hook in this Keras: the generic loop is safe
        setattr(layer, _TRACKED, True)
    return changed


def track_state(model: Any) -> list[Any]:
    """Make ``model``'s recurrent state carry from batch to batch inside ``fit``/``evaluate``/``predict``
    on the current Keras backend; returns what was changed (pass it to :func:`untrack_state`).

    TensorFlow needs nothing. JAX: the state variables become tracked non-trainable variables of their
    layers, so the JAX trainer threads them. torch: state assignment stops modifying tensors that
    autograd saved (the "inplace operation" error when fitting a stateful LSTM/GRU). Prefer
    :func:`stateful_scope`, which undoes the JAX part afterwards.

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.LSTM(2, stateful=True)])
    >>> changed = track_state(m)
    >>> state_is_tracked(m)
    True
    >>> untrack_state(m, changed)
    """
    name = backend()
    if name == "jax":
        return _track_jax(model)
    if name == "torch":
        return _track_torch(model)
    return []


def untrack_state(model: Any, changed: list[Any]) -> None:
    """Undo the JAX part of :func:`track_state` (the torch repair is harmless and stays).

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.GRU(2, stateful=True)])
    >>> before = len(m.non_trainable_variables)
    >>> untrack_state(m, track_state(m))
    >>> len(m.non_trainable_variables) == before  # the saved layout of a plain model
    True
    """
    if backend() != "jax":
        return
    sync_trainer(model)
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
    """Whether every stateful layer of ``model`` carries state inside Keras loops on this backend.

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.LSTM(2, stateful=True)])
    >>> with stateful_scope(m):
    ...     state_is_tracked(m)
    True
    """
    if backend() not in ("jax", "torch"):
        return True
    return all(getattr(layer, _TRACKED, False) for layer in _introspect.stateful_layers(model))


@contextlib.contextmanager
def stateful_scope(model: Any) -> Iterator[Any]:
    """Within this block, Keras' ``fit``/``evaluate``/``predict`` carry ``model``'s recurrent state
    from batch to batch on every backend (see :func:`track_state`).

    statebatch's :class:`LaneResetCallback` and :func:`fit_stateful` do this themselves; use the block
    for plain Keras calls on a stateful model (e.g. ``model.fit(X, y, batch_size=B, shuffle=False)``).

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.SimpleRNN(2, stateful=True)])
    >>> with stateful_scope(m) as same:
    ...     out = m.predict(np.ones((4, 3, 1)), batch_size=2, verbose=0)
    >>> same is m, out.shape
    (True, (4, 2))
    """
    changed = track_state(model)
    try:
        yield model
    finally:
        untrack_state(model, changed)


def replica_parts(variable: Any) -> list[Any]:
    """The per-replica pieces of a state variable, in replica order (one piece off a strategy).

    Why: under ``tf.distribute.MirroredStrategy`` a stateful RNN's state is a mirrored variable whose
    copies are *not* kept equal: each replica's step assigns its own copy in replica context, so the
    copy on replica ``r`` holds lanes ``r * B/R .. (r + 1) * B/R - 1``. Reading ``variable.value`` would
    give replica 0's copy only, and assigning it would overwrite every replica with one value.

    Examples
    --------
    >>> import keras
    >>> v = keras.Variable([[0.0, 1.0]])
    >>> replica_parts(v) == [v]
    True
    """
    if backend() == "tensorflow":
        parts = getattr(variable.value, "values", None)
        if isinstance(parts, (tuple, list)) and len(parts) > 1:
            return list(parts)
    return [variable]


def strategy_replicas(model: Any) -> int:
    """The replicas of the ``tf.distribute`` strategy ``model`` was built under (TensorFlow), else 1.

    Examples
    --------
    >>> import keras
    >>> strategy_replicas(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))
    1
    """
    strategy = getattr(model, "distribute_strategy", None) if backend() == "tensorflow" else None
    return int(getattr(strategy, "num_replicas_in_sync", 1) or 1)


def current_replicas() -> int:
    """The replicas of the ``tf.distribute`` strategy in scope now (TensorFlow), else 1.

    Examples
    --------
    >>> current_replicas()
    1
    """
    if backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return int(tf.distribute.get_strategy().num_replicas_in_sync)


def needs_static_batch_feed() -> bool:
    """Whether ``fit`` must be fed a ``tf.data`` pipeline with a static batch size (TensorFlow).

    Why: Keras' PyDataset adapter gives the TensorFlow backend an unknown batch size, which a stateful
    RNN with one lane rejects in ``fit`` ("enters the loop with shape (1, units)"); the other backends
    take the PyDataset's batches as they are.

    Examples
    --------
    >>> needs_static_batch_feed() == (backend() == "tensorflow")
    True
    """
    return backend() == "tensorflow"


def check_distributed(model: Any) -> None:
    """Refuse Keras on torch under ``torch.distributed``: Keras 3 has no data parallelism there, so
    every process would train every lane of its own copy of the model.

    Examples
    --------
    >>> import keras
    >>> check_distributed(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]))  # one process: fine
    """
    if backend() != "torch":
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise ParameterError(
            f"Keras on the torch backend does not split batches over the {dist.get_world_size()} processes of "
            "torch.distributed: each process would train every lane.",
            "train with statebatch.torch (LaneLoader(arranged, num_replicas=R, rank=r) and StateCarrier, in a "
            "torch DistributedDataParallel model), or run Keras on JAX with keras.distribution.DataParallel or on "
            "TensorFlow with tf.distribute.MirroredStrategy.")
