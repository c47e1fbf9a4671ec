"""Inference models from a trained stateful Keras 3 model: any batch size, states explicit.

A model trained with ``stateful=True`` has a fixed batch size ``B`` and keeps its recurrent state in
non-trainable variables of shape ``(B, units)``. Serving needs something else: any number of series
at once, one step at a time, each series' state kept outside the model. :func:`inference_model`
builds such a model from the trained one, with the very same weight variables:

``inference_model(model)``
    A free batch axis (``None``), a free time axis, and the recurrent states made explicit:
    ``inputs = [x, *initial_states]``, ``outputs = [y, *final_states]``. No state variable is read
    or written, so it runs the same way on TensorFlow, JAX and torch, eagerly or compiled
    (:class:`statebatch.statestore.StateStore` is built on it).
``inference_model(model, batch_size=n)``
    The same model rebuilt stateful with another fixed batch size (1 included): the classic "copy
    the weights into a batch_size=1 twin" recipe, automated.
:func:`state_spec`, :func:`get_states`, :func:`set_states`, :func:`reset_states`
    The states of a stateful model as numpy arrays in the order of ``state_spec``.

How it works: Keras 3 has no public "same graph with other RNN layers" (``clone_model`` makes fresh
weights), so the model's graph is walked as ``keras.src.ops.function.Function._run_through_graph``
does: nodes by decreasing depth (``Functional._nodes_by_depth``), each node's arguments re-bound with
``node.arguments.fill_in``. Other layers are called again as they are (shared); nested
Sequential/functional models are inlined; each stateful ``RNN``/``LSTM``/``GRU``/``SimpleRNN`` (also
inside ``Bidirectional``) is replaced by a copy built from its config whose ``cell`` is the
original cell (the same kernel variables). Keras internals relied on (checked on Keras 3.15.1):
``Functional._nodes_by_depth``, ``Node.operation``/``arguments``/``is_input``/``input_tensors``/
``outputs``, ``Sequential._functional``, ``Layer._tracker.untrack``, ``RNN.states``,
``Bidirectional.forward_layer``/``backward_layer``.

A unidirectional RNN is *streamable*: one call over a whole series equals any split of it into calls
with the states fed back. ``Bidirectional`` and ``go_backwards=True`` are not (the backward direction
reads each call's input reversed); ``state_spec`` marks those states ``streamable=False`` and the
state store refuses to step them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np

from .._args import check_bool
from ..adapters.keras.state import KerasState
from ..errors import DataValueError, DTypeError, ParameterError, ShapeError, StatebatchError, StatefulLayoutError
from .spec import _SPEC_ATTR, StateInfo, StateSpec, _attach_spec
from .twin import _build_error, _copy_model, _graph_of, _new_inputs, _rewrite_error, _Walker

__all__ = ["StateInfo", "StateSpec", "inference_model", "state_spec", "get_states", "set_states",
           "reset_states"]


def check_model(model: Any, what: str = "inference_model") -> None:
    """Refuse anything that is not a Keras model, saying what was given and what is expected."""
    if isinstance(model, keras.Model):
        return
    shown = f"{type(model).__module__}.{type(model).__name__}"
    extra = f" of shape {model.shape}" if isinstance(model, np.ndarray) else ""
    raise ParameterError(
        f"{what} needs a Keras model (keras.Model: Sequential or functional, with stateful recurrent layers), "
        f"got {shown}{extra}.",
        "pass the trained stateful model itself, e.g. keras.Sequential([keras.Input(batch_shape=(B, T, F)), "
        "keras.layers.LSTM(units, stateful=True), ...]).")


# --------------------------------------------------------------------------- public API


def state_spec(model: Any) -> StateSpec:
    """Describe the recurrent states of ``model`` in the order used by this module.

    Parameters
    ----------
    model : keras.Model
        A stateful Sequential or functional model, or a model made by `inference_model` or
        `inference_model(model, batch_size)`.

    Returns
    -------
    StateSpec
        One `StateInfo` per state tensor: layer path, ``h``/``c``, direction, units.

    Raises
    ------
    UnsupportedModelError
        If the model has no stateful recurrent layer or cannot be analysed.

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.LSTM(4, stateful=True, name="enc"),
    ...                       keras.layers.Dense(1)])
    >>> spec = state_spec(m)
    >>> spec.names, spec[0].units, spec.streamable
    (['enc:h', 'enc:c'], 4, True)
    """
    check_model(model, "state_spec")
    attached = getattr(model, _SPEC_ATTR, None)
    if attached is not None:
        return attached[0]
    walker = _Walker("dry")
    fn = _graph_of(model)
    walker.run(model, [None] * len(fn.inputs), ())
    if not walker.infos:
        raise StatefulLayoutError(
            f"model '{model.name}' has no stateful recurrent layer (no LSTM/GRU/SimpleRNN/RNN with "
            "stateful=True): there is no recurrent state to carry from one call to the next.",
            "build the recurrent layers with stateful=True and keras.Input(batch_shape=(B, T, F)); a "
            "model without state already accepts any batch size, call it directly.")
    return StateSpec(walker.infos)


def _stateless_model(model, *, free_time: bool = True, share_weights: bool = True, with_mask: bool = False):
    """Build a model with the same weights, a free batch axis and explicit recurrent states.

    Parameters
    ----------
    model : keras.Model
        A Sequential or functional model containing stateful recurrent layers (LSTM, GRU,
        SimpleRNN, ``keras.layers.RNN`` with a flat-state cell), possibly stacked, wrapped in
        ``Bidirectional`` or inside nested Sequential/functional models.
    free_time : bool, default True
        Make the time axis of every input of rank >= 3 free (``None``), so the twin can run
        one step or a whole series. Set False for models whose layers need the trained
        number of timesteps (``Flatten``, ``unroll=True``...).
    share_weights : bool, default True
        True: the twin uses the original variables (later training of the original shows in
        the twin). False: the twin gets its own copies of the current values.

    Returns
    -------
    twin : keras.Model
        Functional model with ``inputs = [*model_inputs, *initial_states]`` and
        ``outputs = [*model_outputs, *final_states]`` (model inputs/outputs flattened). Every
        state has shape ``(batch, *StateInfo.shape)``; zero states reproduce a fresh start.
        The twin has no stateful variables.
    state_spec : StateSpec
        Order and meaning of the states (same order as `get_states` on ``model``).

    Raises
    ------
    UnsupportedModelError
        For graphs it cannot rewrite (subclassed models, RNN layers called twice or with an
        explicit ``initial_state``, stateful RNNs hidden in custom layers, unknown RNN classes,
        no stateful RNN at all); the message names the layer and what to do.

    Notes
    -----
    ``twin(...)`` returns a list. On JAX, eager calls and ``predict_on_batch`` both work since
    no state variable is involved. Bidirectional / ``go_backwards`` states are not streamable:
    see the module docstring.
    """
    spec = state_spec(model)  # validates and fixes the order
    fn = _graph_of(model)
    walker = _Walker("stateless", unroll_ok=not free_time)
    inputs = _new_inputs(fn, None, free_time)
    mask_in = []
    if with_mask:
        mask_in = [keras.Input(shape=(None,), dtype="bool", name="step_mask")]
        walker.mask = mask_in[0]
    try:
        outputs = walker.run(model, list(inputs), ())
        twin = keras.Model(inputs=[*inputs, *walker.state_inputs, *mask_in],
                           outputs=[*outputs, *walker.state_outputs],
                           name=f"{model.name}_stateless_twin")
    except StatebatchError:
        raise
    except Exception as exc:  # shape errors from layers that need a fixed size
        raise _build_error(model, exc, free_time) from exc
    assert StateSpec(walker.infos) == spec, "state order changed between walks"
    if free_time and not with_mask and any(len(x.shape) >= 3 and x.shape[1] is not None for x in fn.inputs):
        _probe_free_time(model, twin, spec, len(inputs))
    if not share_weights:
        twin, _ = _copy_model(twin, spec)
    _attach_spec(twin, spec, holds_variables=False)
    return twin, spec


def _probe_free_time(model, twin, spec: StateSpec, n_data: int) -> None:
    """Run the twin on 1 and 2 timesteps of zeros: layers built for the trained number of
    timesteps (Flatten + Dense, Reshape...) only fail when called, not when rebuilt."""
    for steps in (1, 2):
        xs = []
        for x in twin.inputs[:n_data]:
            shape = [1, steps] + [1 if d is None else int(d) for d in x.shape[2:]]
            xs.append(np.zeros(shape, dtype=x.dtype))
        try:
            twin([*xs, *spec.zeros(1)], training=False)
        except Exception as exc:
            raise _build_error(model, exc, True) from exc


def _stateful_model(model, batch_size: int, *, share_weights: bool = False):
    """Rebuild a stateful model with another fixed batch size (1 included).

    Parameters
    ----------
    model : keras.Model
        A stateful Sequential or functional model (same scope as `inference_model`).
    batch_size : int
        The new fixed batch size.
    share_weights : bool, default False
        False: the twin's weights are copies of the current values (the classic recipe).
        True: the twin uses the original weight variables (its state variables are its own).

    Returns
    -------
    keras.Model
        Functional model with the same inputs and outputs as ``model`` but batch size
        ``batch_size``, stateful layers of the same configuration, zero states, nested models
        inlined. `get_states`/`set_states` on it use the order of ``state_spec(model)``.

    Raises
    ------
    UnsupportedModelError
        As `inference_model`; also for a non-positive ``batch_size``.

    Notes
    -----
    The twin is still stateful: on JAX only eager calls (``twin(x)``) carry state between
    calls, ``predict``/``predict_on_batch`` do not (see KERAS_FACTS.md). The stateless twin
    has no such trap.
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}.",
                             "pass e.g. batch_size=1, or batch_size=None for a free batch axis.")
    spec = state_spec(model)
    fn = _graph_of(model)
    walker = _Walker("stateful", unroll_ok=True)
    inputs = _new_inputs(fn, int(batch_size), free_time=False)
    try:
        outputs = walker.run(model, list(inputs), ())
        twin = keras.Model(inputs=keras.tree.pack_sequence_as(fn._inputs_struct, inputs),
                           outputs=keras.tree.pack_sequence_as(fn._outputs_struct, outputs),
                           name=f"{model.name}_batch{batch_size}")
    except StatebatchError:
        raise
    except Exception as exc:
        raise _build_error(model, exc, False) from exc
    new_spec = StateSpec(walker.infos)
    assert new_spec == spec, "state order changed between walks"
    if not share_weights:
        twin, new_spec = _copy_model(twin, new_spec)
    _attach_spec(twin, new_spec, holds_variables=True)
    return twin


def inference_model(model: Any, batch_size: int | None = None, *, share_weights: bool = True,
                    free_time: bool = True) -> Any:
    """The trained stateful ``model`` with the same weights at any batch size.

    Parameters
    ----------
    model : keras.Model
        A Sequential or functional model with stateful recurrent layers (LSTM, GRU, SimpleRNN,
        ``keras.layers.RNN`` with a flat-state cell), possibly stacked, inside ``Bidirectional`` or
        inside nested Sequential/functional models.
    batch_size : int or None
        ``None`` (default): a free batch axis with the states passed in and out explicitly:
        ``twin([x, *states])`` returns ``[y, *final_states]``, ``x`` ``(n, T, F)``, each state
        ``(n, *StateInfo.shape)`` in ``state_spec(model)`` order (zeros = a fresh start). No state
        variable is involved, so it behaves the same on every backend, also inside ``predict``.
        An integer: the model rebuilt stateful with that fixed batch size (1 included), with its own
        state variables (``get_states``/``set_states``/``reset_states`` act on them). On JAX such a
        model carries state only through eager calls ``m(x)``, not through ``predict``.
    share_weights : bool, default True
        True: the new model uses the very weight variables of ``model`` (later training shows).
        False: it gets copies of their current values.
    free_time : bool, default True
        With ``batch_size=None``, leave the time axis free (``None``) so one model runs one step or
        a whole series. Pass False when a layer needs the trained number of timesteps (``Flatten``).

    Returns
    -------
    keras.Model
        ``state_spec(result)`` describes its states.

    Raises
    ------
    UnsupportedModelError
        For graphs that cannot be rewritten (subclassed models, a stateful layer called twice or with
        an explicit ``initial_state``, a stateful RNN hidden inside a custom layer); the message names
        the layer and what to do.
    StatefulLayoutError
        When the model has no stateful recurrent layer.

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.GRU(2, stateful=True)])
    >>> twin = inference_model(m)  # any batch size, states in and out
    >>> y, h = twin([np.ones((5, 1, 1)), np.zeros((5, 2))])
    >>> tuple(y.shape), tuple(h.shape)
    ((5, 2), (5, 2))
    >>> inference_model(m, batch_size=1).input_shape  # the stateful model for one series
    (1, 3, 1)
    """
    check_model(model, "inference_model")
    share_weights = check_bool("share_weights", share_weights)
    free_time = check_bool("free_time", free_time)
    if batch_size is None:
        return _stateless_model(model, free_time=free_time, share_weights=share_weights)[0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ParameterError(f"batch_size must be a positive integer or None, got {batch_size!r}.",
                             "pass e.g. batch_size=1, or None for a free batch axis with explicit states.")
    return _stateful_model(model, int(batch_size), share_weights=share_weights)


def _keras_state(model: Any) -> tuple[StateSpec, KerasState]:
    """The model's state spec, and its state variables in spec order as the one Keras state handle
    (:class:`statebatch.adapters.keras.state.KerasState`: the JAX trainer's live values are written back
    before every read and write, a strategy's replica copies are shown as one state)."""
    attached = getattr(model, _SPEC_ATTR, None)
    if attached is not None and not attached[1]:
        raise _rewrite_error(
            f"Model '{model.name}' is a stateless twin: it has no state variables; its states "
            "are the extra inputs and outputs of each call.", "keep the states returned by "
            "twin([x, *states]) yourself, or use inference_model(model, batch_size=n) for a stateful model.")
    spec = state_spec(model)
    return spec, KerasState(model, [info.layer.states[info.state_index] for info in spec])


def get_states(model: Any) -> list[np.ndarray]:
    """Current recurrent states of a stateful model, in ``state_spec(model)`` order.

    Parameters
    ----------
    model : keras.Model
        A stateful model (the trained original or a `inference_model(model, batch_size)`).

    Returns
    -------
    list of numpy.ndarray
        One array of shape ``(batch_size, *shape)`` per state; row ``i`` is lane ``i``.

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.LSTM(4, stateful=True)])
    >>> [s.shape for s in get_states(m)]  # h and c, one row per lane
    [(2, 4), (2, 4)]
    """
    return _keras_state(model)[1].snapshot()


def set_states(model: Any, arrays: Sequence[Any]) -> None:
    """Overwrite the recurrent states of a stateful model.

    Parameters
    ----------
    model : keras.Model
        A stateful model (the trained original or a `inference_model(model, batch_size)`).
    arrays : sequence of array-like
        One array per state, in ``state_spec(model)`` order, each of shape
        ``(batch_size, *shape)`` exactly as the variable (e.g. rows taken from the twin's
        final states).

    Raises
    ------
    ValueError
        If the number of arrays or a shape does not match.

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.SimpleRNN(2, stateful=True)])
    >>> set_states(m, [np.array([[0.5, 0.5], [1.0, 1.0]])])
    >>> get_states(m)[0].tolist()
    [[0.5, 0.5], [1.0, 1.0]]
    """
    spec, state = _keras_state(model)
    variables = state.variables
    if isinstance(arrays, (np.ndarray, str, bytes)) or not isinstance(arrays, (Sequence, Iterator)):
        raise ParameterError(f"arrays must be a list with one array per state, got {type(arrays).__name__}.",
                             f"pass a list of {len(variables)} arrays in state_spec(model) order ({spec.names}).")
    arrays = list(arrays)
    if len(arrays) != len(variables):
        raise ShapeError(f"expected {len(variables)} state arrays ({spec.names}), got {len(arrays)}.",
                         "pass one array per state, in state_spec(model) order.")
    checked = []
    for i, (info, var, arr) in enumerate(zip(spec, variables, arrays)):
        try:
            a = arr if isinstance(arr, np.ndarray) else np.asarray(
                keras.ops.convert_to_numpy(arr) if hasattr(arr, "shape") else arr)
        except Exception as exc:  # ragged lists, objects no backend converts
            raise ShapeError(f"state {info.name} cannot be read as one array ({type(exc).__name__}).",
                             "pass numeric arrays shaped as the model's state variables.") from None
        if a.dtype.kind not in "biuf":
            raise DTypeError(f"state {info.name} has dtype {a.dtype}, not numbers.",
                             "pass numeric arrays (e.g. rows taken from get_states or the twin's final states).")
        expected = (state.rows(i), *tuple(var.shape)[1:])  # every replica's lanes (one piece off a strategy)
        if tuple(a.shape) != expected:
            raise ShapeError(f"state {info.name}: expected shape {expected}, got {tuple(a.shape)}.",
                             "pass arrays shaped exactly as the model's state variables.")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DataValueError(f"state {info.name} holds NaN/inf: every later step of those lanes would be NaN.",
                                 "pass finite states (reset_states(model) zeroes them).")
        checked.append(np.asarray(a, dtype=var.dtype))
    state.restore(checked)


def reset_states(model: Any) -> None:
    """Zero every recurrent state of a stateful model (Keras has no ``Model.reset_states``).

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 3, 1)), keras.layers.GRU(2, stateful=True)])
    >>> set_states(m, [np.ones((2, 2))])
    >>> reset_states(m)
    >>> float(get_states(m)[0].sum())
    0.0
    """
    _keras_state(model)[1].zero(None)
