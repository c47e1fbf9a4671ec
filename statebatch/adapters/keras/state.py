"""Reading and writing a Keras model's recurrent state: the one state module of statebatch.

The adapter (the lane callback, resumable training) and serving (:mod:`statebatch.serving.inference`'s
``get_states``/``set_states``/``reset_states``) both go through :class:`KerasState`: every read and
every write first writes the JAX trainer's live values back (:func:`~.backends.sync_trainer`, the one
sync), and under a ``tf.distribute`` strategy a state variable's replica copies are shown as one
``(batch_size, units)`` state (:func:`~.backends.replica_parts`). Backend differences live in
:mod:`.backends` only.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from ... import _introspect
from ..._args import check_int
from ...errors import BatchSizeError, ModelMismatchError, ParameterError
from .backends import current_replicas, replica_parts, strategy_replicas, sync_trainer

__all__ = ["stateful_layers", "replicas", "model_batch_size", "KerasState", "reset_rows"]


def stateful_layers(model: Any) -> list[Any]:
    """Every stateful recurrent layer of ``model``, also inside nested models and wrappers.

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.LSTM(4, stateful=True),
    ...                       keras.layers.Dense(1)])
    >>> [type(layer).__name__ for layer in stateful_layers(m)]
    ['LSTM']
    """
    return _introspect.stateful_layers(model)


def replicas(model: Any) -> int:
    """How many replicas each hold their own rows of ``model``'s state: the replicas of the
    ``tf.distribute`` strategy the model was built under on TensorFlow (each builds the model for
    ``batch_size / replicas`` rows), else 1 (JAX's ``keras.distribution`` shards one global state).

    Examples
    --------
    >>> import keras
    >>> replicas(keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.LSTM(4, stateful=True)]))
    1
    """
    return strategy_replicas(model)


def model_batch_size(arranged: Any, num_replicas: int | None = None) -> int:
    """The batch size to build a stateful model with for ``arranged`` under the current distribution.

    ``keras.Input(batch_shape=(model_batch_size(arranged), T, F))``: on TensorFlow inside a
    ``tf.distribute`` strategy's scope every replica runs the model on its own consecutive block of
    ``batch_size / replicas`` lanes (Keras splits each global batch that way), so the model is built for
    that block; elsewhere (one device, or JAX's ``keras.distribution.DataParallel``, which shards one
    global batch) for the whole ``batch_size``. ``num_replicas`` overrides the detected count.

    Examples
    --------
    >>> import numpy as np, statebatch as sb
    >>> a = sb.arrange_stateful(np.arange(40.0), timesteps=5, batch_size=4)
    >>> model_batch_size(a), model_batch_size(a, num_replicas=2)
    (4, 2)
    """
    batch_size = int(arranged.batch_size)
    if num_replicas is None:
        num_replicas = current_replicas()
    num_replicas = check_int("num_replicas", num_replicas, 1)
    if batch_size % num_replicas:
        raise BatchSizeError(f"batch_size={batch_size} lanes do not split evenly over {num_replicas} replicas.",
                             f"arrange with a batch_size divisible by {num_replicas} (e.g. "
                             f"{max(num_replicas, batch_size // num_replicas * num_replicas)}).")
    return batch_size // num_replicas


def _row_index(rows: Any, lanes: int) -> np.ndarray:
    """``rows`` checked as lane indices or a boolean mask over ``lanes`` lanes."""
    rows = np.asarray(rows)
    if rows.size and rows.dtype != bool and not np.issubdtype(rows.dtype, np.integer):
        raise ParameterError(f"rows must be lane indices (integers) or a boolean mask, got dtype {rows.dtype}.",
                             "pass e.g. rows=[0, 3] or a mask with one flag per lane.")
    if rows.dtype != bool:
        idx = rows.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= lanes):
            raise ParameterError(f"rows {idx[(idx < 0) | (idx >= lanes)][:5].tolist()} are outside the "
                                 f"{lanes} lanes of the model's state.",
                                 f"pass lane indices between 0 and {lanes - 1}.")
        return idx  # an empty list is float to numpy, which refuses it as an index
    if rows.shape != (lanes,):
        raise ParameterError(f"a boolean row mask needs shape ({lanes},), got {rows.shape}.",
                             "pass one flag per lane.")
    return rows


class KerasState:
    """The recurrent state of a Keras model (or a list of its stateful layers) as a state handle.

    Reads and writes go through the variables' values (``keras.ops`` cannot take a JAX Variable),
    after the JAX trainer's in-flight values were written back (:func:`~.backends.sync_trainer`).
    Under a ``tf.distribute`` strategy each state variable's replicas hold consecutive blocks of lanes;
    the handle shows them as one ``(batch_size, units)`` state (see :func:`~.backends.replica_parts`).

    Parameters
    ----------
    model_or_layers : keras.Model or list of layers
    variables : list of state variables, optional
        The state variables in the order the caller wants them (serving's ``state_spec`` order);
        default: every stateful layer's ``states``, layer by layer.

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input(batch_shape=(3, 2, 1)), keras.layers.GRU(2, stateful=True)])
    >>> _ = m(np.ones((3, 2, 1)))
    >>> state = KerasState(m)
    >>> state.batch_size, len(state.variables)
    (3, 1)
    >>> state.zero([1])
    >>> [bool(row.any()) for row in state.snapshot()[0]]
    [True, False, True]
    """

    def __init__(self, model_or_layers: Any, variables: Sequence[Any] | None = None):
        self.model = None if isinstance(model_or_layers, (list, tuple)) else model_or_layers
        self.layers = (list(model_or_layers) if isinstance(model_or_layers, (list, tuple))
                       else stateful_layers(model_or_layers))
        self.variables = (list(variables) if variables is not None
                          else [v for layer in self.layers for v in _introspect.state_variables(layer)])
        self._parts = [replica_parts(v) for v in self.variables]

    @property
    def batch_size(self) -> int | None:
        """Lanes of the state (``None`` without state variables)."""
        return self.rows(0) if self.variables else None

    def rows(self, i: int) -> int:
        """Lanes held by state variable ``i`` over all replicas."""
        return sum(int(p.shape[0]) for p in self._parts[i])

    def _sync(self) -> None:
        if self.model is not None:
            sync_trainer(self.model)

    def _values(self) -> list[np.ndarray]:
        self._sync()
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

    def zero(self, rows: Any = None) -> None:
        """Zero the state of the lanes ``rows`` (indices or a boolean mask); every lane with ``None``."""
        for i, value in enumerate(self._values()):
            if rows is None:
                self._assign(i, np.zeros_like(value))
                continue
            value[_row_index(rows, value.shape[0])] = 0
            self._assign(i, value)

    def snapshot(self) -> list[np.ndarray]:
        """Every state variable's value, ``(batch_size, units)`` each, as numpy arrays."""
        return self._values()

    def restore(self, snapshot: Sequence[np.ndarray]) -> None:
        """Assign the values of :meth:`snapshot` (or arrays of the same shapes) back."""
        self._sync()
        for i, value in enumerate(snapshot):
            self._assign(i, value)


def reset_rows(model_or_layers: Any, rows: Any = None) -> None:
    """Zero the recurrent state of some rows (lanes); all rows when ``rows`` is ``None``.

    Parameters
    ----------
    model_or_layers : keras.Model or list of layers
    rows : bool mask ``(batch_size,)`` or integer indices of the lanes to reset.

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 2, 1)), keras.layers.SimpleRNN(1, stateful=True)])
    >>> _ = m(np.ones((2, 2, 1)))
    >>> reset_rows(m, [True, False])
    >>> KerasState(m).snapshot()[0][0].tolist()
    [0.0]
    """
    state = KerasState(model_or_layers)
    if not state.variables:
        raise ModelMismatchError(f"{type(model_or_layers).__name__} has no stateful recurrent layer whose state could be "
                                 "reset.", "pass a Keras model (or layers) built with stateful=True recurrent layers.")
    state.zero(None if rows is None else np.asarray(rows))
