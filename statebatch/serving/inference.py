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
from dataclasses import dataclass, field, replace
from typing import Any

import keras
import numpy as np
from keras import layers as L

from .._args import check_bool
from ..errors import (DataValueError, DTypeError, ParameterError, ShapeError, StatebatchError, StatefulLayoutError,
                     UnsupportedModelError)

try:  # Internal class: public keras.Model(inputs, outputs) returns a Functional instance.
    from keras.src.models.functional import Functional
except ImportError as exc:  # pragma: no cover - only for other Keras layouts
    raise ImportError("statebatch.inference needs Keras 3 (keras.src.models.functional)") from exc

__all__ = ["StateInfo", "StateSpec", "inference_model", "state_spec", "get_states", "set_states",
           "reset_states"]


def _rewrite_error(problem: str, fix: str) -> UnsupportedModelError:
    """A refusal of a graph the twin builder cannot rewrite: the problem, then a ``Fix:`` line."""
    return UnsupportedModelError(problem, fix)


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


_SUPPORTED_RNN = (L.LSTM, L.GRU, L.SimpleRNN)
_STATE_KINDS = {L.LSTM: ("h", "c"), L.GRU: ("h",), L.SimpleRNN: ("h",)}
_SPEC_ATTR = "_statebatch_state_spec"


@dataclass(frozen=True)
class StateInfo:
    """One recurrent state tensor of a model.

    Attributes
    ----------
    index : int
        Position in ``state_spec`` (and in ``get_states``; the twin's state inputs and
        outputs follow the same order).
    layer_path : str
        Where the RNN sits: nested model names, the layer name and, inside ``Bidirectional``,
        ``forward``/``backward``, joined by ``/``. For example ``"encoder/lstm"``.
    layer_name : str
        Name of the outermost layer of the site (the ``Bidirectional`` wrapper or the RNN).
    layer_class : str
        Class name of the recurrent layer (``"LSTM"``, ``"GRU"``, ``"SimpleRNN"``, ``"RNN"``).
    kind : str
        ``"h"`` (hidden state / output) or ``"c"`` (LSTM carry); ``"s0"``, ``"s1"``, ...
        for cells of a generic ``keras.layers.RNN`` other than LSTM/GRU/SimpleRNN cells.
    direction : str
        ``"forward"`` or ``"backward"`` (``go_backwards=True`` or the backward half of a
        ``Bidirectional``).
    units : int
        Size of the state's last axis.
    shape : tuple of int
        Shape of one row of the state (``(units,)`` for LSTM/GRU/SimpleRNN).
    dtype : str
        Variable dtype of the state.
    streamable : bool
        ``True`` when splitting a series into several calls does not change results
        (forward direction); ``False`` for backward directions.
    """

    index: int
    layer_path: str
    layer_name: str
    layer_class: str
    kind: str
    direction: str
    units: int
    shape: tuple
    dtype: str
    streamable: bool
    # The RNN layer holding the state variable in the model the spec was computed for, and
    # the position of the variable in ``layer.states``. Not part of equality or repr.
    layer: Any = field(default=None, compare=False, repr=False)
    state_index: int = field(default=0, compare=False, repr=False)

    @property
    def name(self) -> str:
        """A readable unique name, e.g. ``"encoder/lstm:c"``."""
        return f"{self.layer_path}:{self.kind}"


class StateSpec(Sequence):
    """Ordered description of every recurrent state of a model (a sequence of `StateInfo`).

    The order is the order of the twin's state inputs and outputs and of
    `get_states` / `set_states`.
    """

    def __init__(self, infos: Sequence[StateInfo]):
        self._infos = tuple(infos)

    def __getitem__(self, i):
        return self._infos[i]

    def __len__(self) -> int:
        return len(self._infos)

    def __repr__(self) -> str:
        rows = ",\n  ".join(
            f"{s.index}: {s.name} {s.layer_class} {s.direction} units={s.units}"
            + ("" if s.streamable else " (not streamable)")
            for s in self._infos
        )
        return f"StateSpec([\n  {rows}\n])"

    def __eq__(self, other) -> bool:
        return isinstance(other, StateSpec) and self._infos == other._infos

    @property
    def names(self) -> list[str]:
        """``StateInfo.name`` of each state, in order."""
        return [s.name for s in self._infos]

    @property
    def streamable(self) -> bool:
        """Whether every state is streamable (no backward direction anywhere)."""
        return all(s.streamable for s in self._infos)

    def zeros(self, batch_size: int) -> list[np.ndarray]:
        """Zero initial states for ``batch_size`` rows, one array per state."""
        return [np.zeros((batch_size,) + tuple(s.shape), dtype=s.dtype) for s in self._infos]


# --------------------------------------------------------------------------- graph walking


def _graph_of(model) -> Any:
    """The Functional graph that executes ``model``, or a `UnsupportedModelError` saying why there is none."""
    name = getattr(model, "name", type(model).__name__)
    if isinstance(model, keras.Sequential):
        if type(model).call is not keras.Sequential.call:
            raise _rewrite_error(
                f"Sequential subclass '{name}' ({type(model).__name__}) overrides call(); its "
                "computation is not its layer list.", "build the model without a custom call().")
        fn = getattr(model, "_functional", None)
        if fn is None:
            raise _rewrite_error(
                f"Sequential model '{name}' has no known input.",
                "start it with keras.Input(batch_shape=(B, T, F)) (stateful RNNs need that anyway).")
        return fn
    if isinstance(model, Functional):
        if type(model).call is not Functional.call:
            raise _rewrite_error(
                f"Model '{name}' ({type(model).__name__}) is functional but overrides call(); "
                "the twin builder only follows the graph of layers.", "remove the custom call().")
        return model
    raise _rewrite_error(
        f"Model '{name}' is a subclassed model ({type(model).__name__}): its computation lives "
        "in Python code that cannot be rewritten.", "rebuild it as a Sequential or functional "
        "model (keras.Model(inputs, outputs)), or give its call() an explicit `initial_state` "
        "argument and return the final states yourself.")


def _nodes_in_order(fn) -> Iterator[Any]:
    """Nodes of a Functional graph in the order ``Function._run_through_graph`` runs them."""
    by_depth = getattr(fn, "_nodes_by_depth", None)
    if by_depth is None:  # pragma: no cover - guard against Keras internals changing
        raise _rewrite_error(
            "This Keras version has no Functional._nodes_by_depth; the twin builder "
            f"was written against Keras 3.15 (found {keras.__version__}).", "install keras>=3.12,<4.")
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.operation is None or node.is_input:
                continue
            yield node


def _is_stateful_rnn(op) -> bool:
    return isinstance(op, L.RNN) and bool(getattr(op, "stateful", False))


def _is_stateful_bidirectional(op) -> bool:
    return isinstance(op, L.Bidirectional) and bool(getattr(op, "stateful", False))


def _hidden_stateful_rnn(op) -> Any:
    """A stateful RNN hidden inside a layer the walker does not descend into, or None."""
    flatten = getattr(op, "_flatten_layers", None)
    if flatten is None:
        return None
    for sub in flatten(include_self=False, recursive=True):
        if _is_stateful_rnn(sub):
            return sub
    return None


def _check_rnn(rnn, where: str) -> tuple[str, ...]:
    """Validate a stateful RNN layer the twin can rebuild; return its state kinds."""
    if type(rnn) in _STATE_KINDS:
        kinds = _STATE_KINDS[type(rnn)]
    elif type(rnn) is L.RNN:
        cell = rnn.cell
        if isinstance(cell, L.StackedRNNCells) or any(
            not isinstance(s, int) for s in rnn.state_size
        ):
            raise _rewrite_error(
                f"Layer '{where}' is an RNN whose cell ({type(cell).__name__}) has a nested "
                f"state structure (state_size={getattr(cell, 'state_size', None)}); the twin "
                "only handles flat states.", "use one RNN layer per cell (stack layers instead "
                "of StackedRNNCells).")
        if isinstance(cell, L.LSTMCell):
            kinds = ("h", "c")
        elif isinstance(cell, (L.GRUCell, L.SimpleRNNCell)):
            kinds = ("h",)
        else:
            kinds = tuple(f"s{i}" for i in range(len(rnn.state_size)))
    else:
        raise _rewrite_error(
            f"Layer '{where}' is a stateful {type(rnn).__name__}, which the twin builder does "
            "not know how to rebuild (supported: LSTM, GRU, SimpleRNN and keras.layers.RNN "
            "with a cell of flat state_size, possibly inside Bidirectional).", "use one of those "
            "or keras.layers.RNN(your_cell).")
    states = rnn.states
    if states is None or len(states) != len(kinds) or any(
        not hasattr(v, "assign") for v in states
    ):
        raise _rewrite_error(
            f"Layer '{where}' is stateful but has state variables {states!r} where "
            f"{len(kinds)} flat variables were expected.", "build the model with a fixed batch "
            "size first (keras.Input(batch_shape=(B, T, F))).")
    return kinds


def _new_cell_rnn(rnn, *, stateful: bool, return_state: bool, unroll: bool):
    """A copy of ``rnn`` built from its config that uses ``rnn.cell`` (same weight variables)."""
    if type(rnn) is L.RNN:
        return L.RNN(
            rnn.cell,
            return_sequences=rnn.return_sequences,
            return_state=return_state,
            go_backwards=rnn.go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=rnn.zero_output_for_mask,
            name=rnn.name,
            dtype=rnn.dtype_policy,
        )
    config = rnn.get_config()
    config.update(stateful=stateful, return_state=return_state, unroll=unroll)
    new = type(rnn).from_config(config)
    if hasattr(rnn, "use_cudnn"):  # not serialized; keep the user's choice
        new.use_cudnn = rnn.use_cudnn
    _adopt_cell(new, rnn.cell)
    return new


def _adopt_cell(rnn, cell) -> None:
    """Make an unbuilt RNN layer use ``cell`` (and its variables) instead of its own cell."""
    own = rnn.cell
    if own is cell:
        return
    rnn._tracker.untrack(own)
    rnn.cell = cell


def _new_bidirectional(bi, *, stateful: bool, return_state: bool, unroll: bool):
    fwd = _new_cell_rnn(bi.forward_layer, stateful=stateful, return_state=return_state,
                        unroll=unroll)
    bwd = _new_cell_rnn(bi.backward_layer, stateful=stateful, return_state=return_state,
                        unroll=unroll)
    new = L.Bidirectional(fwd, backward_layer=bwd, merge_mode=bi.merge_mode, name=bi.name,
                          dtype=bi.dtype_policy)
    # Bidirectional re-creates its forward layer from the config of `fwd` (fresh cell).
    _adopt_cell(new.forward_layer, bi.forward_layer.cell)
    if hasattr(bi.forward_layer, "use_cudnn"):
        new.forward_layer.use_cudnn = bi.forward_layer.use_cudnn
    return new


class _Walker:
    """Re-run a model graph on new tensors, rewriting its stateful RNN sites.

    ``mode``: ``"dry"`` (no tensors; only collect the state spec), ``"stateless"`` (explicit
    states) or ``"stateful"`` (stateful copies, for `inference_model(model, batch_size)`).
    """

    def __init__(self, mode: str, unroll_ok: bool = False):
        self.mode = mode
        self.unroll_ok = unroll_ok
        self.infos: list[StateInfo] = []
        self.state_inputs: list[Any] = []
        self.state_outputs: list[Any] = []
        self._seen: dict[int, str] = {}
        self.mask: Any = None  # a (batch, time) bool input passed to every RNN site (exact warm-up of ragged rows)

    # -- graph
    def run(self, model, flat_inputs: list, path: tuple) -> list:
        fn = _graph_of(model)
        if len(flat_inputs) != len(fn.inputs):
            raise _rewrite_error(
                f"Model '{'/'.join(path) or model.name}' expects {len(fn.inputs)} inputs but "
                f"its call in the outer graph passes {len(flat_inputs)}.",
                "call the nested model with exactly its inputs.")
        tensors = {id(x): v for x, v in zip(fn.inputs, flat_inputs)}
        for node in _nodes_in_order(fn):
            if any(id(x) not in tensors for x in node.input_tensors):
                continue  # Not computable from the inputs; Keras skips these too.
            args, kwargs = node.arguments.fill_in(tensors)
            outs = self.visit(node, args, kwargs, path)
            for x, y in zip(node.outputs, outs):
                tensors[id(x)] = y
        return [tensors[id(x)] for x in fn.outputs]

    def visit(self, node, args, kwargs, path) -> list:
        op = node.operation
        where = "/".join(path + (op.name,))
        if isinstance(op, (Functional, keras.Sequential)):
            extra = [k for k, v in kwargs.items() if k not in ("training", "mask")
                     and v is not None]
            if len(args) != 1 or extra:
                raise _rewrite_error(
                    f"Nested model '{where}' is called with extra arguments "
                    f"({len(args)} positional, keywords {extra}); only model(inputs) calls "
                    "can be inlined.", "call the nested model as model(inputs).")
            return self.run(op, keras.tree.flatten(args[0]), path + (op.name,))
        if isinstance(op, keras.Model):
            if _hidden_stateful_rnn(op) is not None or _is_stateful_rnn(op):
                _graph_of(op)  # raises the subclassed-model error
            return self.call_as_is(op, node, args, kwargs)
        if _is_stateful_bidirectional(op):
            return self.bidirectional_site(op, node, args, kwargs, path, where)
        if _is_stateful_rnn(op):
            return self.rnn_site(op, node, args, kwargs, path, where)
        hidden = _hidden_stateful_rnn(op)
        if hidden is not None:
            raise _rewrite_error(
                f"Layer '{where}' ({type(op).__name__}) contains the stateful recurrent layer "
                f"'{hidden.name}' inside its own call(); the twin builder cannot reach its "
                "state.", "put the RNN directly in the functional/Sequential graph (or in a nested "
                "functional model), or wrap it with Bidirectional only.")
        return self.call_as_is(op, node, args, kwargs)

    def call_as_is(self, op, node, args, kwargs) -> list:
        if self.mode == "dry":
            return [None] * len(node.outputs)
        return keras.tree.flatten(op(*args, **kwargs))

    # -- RNN sites
    def _enter_site(self, layer, where, args, kwargs) -> None:
        if id(layer) in self._seen:
            raise _rewrite_error(
                f"Stateful recurrent layer '{where}' is called more than once in the model "
                f"(also as '{self._seen[id(layer)]}'); all its calls read and write the same "
                "state variables, which has no explicit-state equivalent.", "use one layer per "
                "call (copy the weights) or make it stateless.")
        self._seen[id(layer)] = where
        initial = kwargs.get("initial_state")
        if len(args) > 1 or initial is not None:
            raise _rewrite_error(
                f"Stateful recurrent layer '{where}' is called with an explicit initial_state; "
                "then its state variables are written but never read, so the model does not "
                "carry state through that layer.", "make the layer stateful=False (and keep "
                "passing initial_state), then build the twin.")
        extra = [k for k, v in kwargs.items() if k not in ("training", "mask", "initial_state")
                 and v is not None]
        if extra:
            raise _rewrite_error(f"Stateful recurrent layer '{where}' is called with unsupported "
                                 f"arguments {extra}.", "call it with the sequence (and mask) only.")

    def _record(self, rnn, kinds, path_str, site_name, direction, streamable) -> None:
        for i, (var, kind) in enumerate(zip(rnn.states, kinds)):
            shape = tuple(int(d) for d in var.shape[1:])
            self.infos.append(StateInfo(
                index=len(self.infos),
                layer_path=path_str,
                layer_name=site_name,
                layer_class=type(rnn).__name__,
                kind=kind,
                direction=direction,
                units=shape[-1] if shape else 1,
                shape=shape,
                dtype=str(var.dtype),
                streamable=streamable,
                layer=rnn,
                state_index=i,
            ))

    def _state_inputs_for(self, first: int) -> list:
        made = []
        for info in self.infos[first:]:
            safe = info.name.replace("/", "_").replace(":", "_")
            made.append(keras.Input(shape=info.shape, dtype=info.dtype,
                                    name=f"state_{info.index}_{safe}"))
        self.state_inputs.extend(made)
        return made

    def _call_kwargs(self, kwargs) -> dict:
        out = {k: v for k, v in kwargs.items() if k in ("training", "mask") and v is not None}
        if self.mask is not None and self.mode == "stateless":
            out["mask"] = self.mask  # a masked step leaves the state as it is (Keras' rnn: where(mask, new, old))
        return out

    def rnn_site(self, rnn, node, args, kwargs, path, where) -> list:
        self._enter_site(rnn, where, args, kwargs)
        kinds = _check_rnn(rnn, where)
        first = len(self.infos)
        backward = bool(rnn.go_backwards)
        self._record(rnn, kinds, where, rnn.name, "backward" if backward else "forward",
                     not backward)
        if self.mode == "dry":
            return [None] * len(node.outputs)
        unroll = bool(rnn.unroll) and self.unroll_ok
        if self.mode == "stateful":
            new = _new_cell_rnn(rnn, stateful=True, return_state=rnn.return_state, unroll=unroll)
            out = keras.tree.flatten(new(args[0], **self._call_kwargs(kwargs)))
            self._retarget(first, [new] * len(kinds))
            return out
        new = _new_cell_rnn(rnn, stateful=False, return_state=True, unroll=unroll)
        states_in = self._state_inputs_for(first)
        out = keras.tree.flatten(new(args[0], initial_state=states_in,
                                     **self._call_kwargs(kwargs)))
        y, states_out = out[0], out[1:]
        self.state_outputs.extend(states_out)
        return [y, *states_out] if rnn.return_state else [y]

    def bidirectional_site(self, bi, node, args, kwargs, path, where) -> list:
        self._enter_site(bi, where, args, kwargs)
        fwd, bwd = bi.forward_layer, bi.backward_layer
        fkinds = _check_rnn(fwd, f"{where}/forward")
        bkinds = _check_rnn(bwd, f"{where}/backward")
        first = len(self.infos)
        self._record(fwd, fkinds, f"{where}/forward", bi.name, "forward", False)
        self._record(bwd, bkinds, f"{where}/backward", bi.name, "backward", False)
        if self.mode == "dry":
            return [None] * len(node.outputs)
        unroll = bool(fwd.unroll) and self.unroll_ok
        if self.mode == "stateful":
            new = _new_bidirectional(bi, stateful=True, return_state=bi.return_state,
                                     unroll=unroll)
            out = keras.tree.flatten(new(args[0], **self._call_kwargs(kwargs)))
            self._retarget(first, [new.forward_layer] * len(fkinds)
                           + [new.backward_layer] * len(bkinds))
            return out
        new = _new_bidirectional(bi, stateful=False, return_state=True, unroll=unroll)
        states_in = self._state_inputs_for(first)
        out = keras.tree.flatten(new(args[0], initial_state=states_in,
                                     **self._call_kwargs(kwargs)))
        n_states = len(fkinds) + len(bkinds)
        main, states_out = out[:-n_states], out[-n_states:]
        self.state_outputs.extend(states_out)
        return [*main, *states_out] if bi.return_state else main

    def _retarget(self, first: int, new_layers: list) -> None:
        """Point spec entries at the new stateful layers (for `inference_model(model, batch_size)`)."""
        for k, new in enumerate(new_layers):
            old = self.infos[first + k]
            self.infos[first + k] = replace(old, layer=new)


def _attach_spec(model, spec: StateSpec, holds_variables: bool) -> None:
    object.__setattr__(model, _SPEC_ATTR, (spec, holds_variables))


def _new_inputs(fn, batch_size, free_time: bool) -> list:
    new = []
    for x in fn.inputs:
        shape = list(x.shape)
        shape[0] = batch_size
        if free_time and len(shape) >= 3:
            shape[1] = None
        new.append(keras.Input(batch_shape=tuple(shape), dtype=x.dtype,
                               name=x._keras_history.operation.name))
    return new


def _copy_model(twin, spec: StateSpec) -> tuple[Any, StateSpec]:
    """Deep copy of a twin (fresh variables holding the same values) and its remapped spec."""
    copy = keras.models.clone_model(twin)
    copy.set_weights(twin.get_weights())
    by_name = {layer.name: layer for layer in copy.layers}
    infos = []
    for info in spec:
        layer = by_name.get(info.layer_name)
        if isinstance(layer, L.Bidirectional):
            layer = layer.forward_layer if info.direction == "forward" else layer.backward_layer
        infos.append(replace(info, layer=layer))
    return copy, StateSpec(infos)


def _build_error(model, exc, free_time: bool) -> UnsupportedModelError:
    hint = (" With free_time=True the time axis is None; if a layer needs a fixed number of "
            "timesteps (Flatten, Reshape, unroll=True...), pass free_time=False."
            if free_time else "")
    return _rewrite_error(f"Rebuilding '{model.name}' with a free batch axis failed: "
                          f"{type(exc).__name__}: {exc}.",
                          hint.strip() or "make every layer accept any batch size (no layer with a fixed batch "
                          "dimension other than the stateful RNNs), or pass batch_size=<the trained batch size>.")


# --------------------------------------------------------------------------- public API


def state_spec(model) -> StateSpec:
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


def inference_model(model, batch_size: int | None = None, *, share_weights: bool = True, free_time: bool = True):
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


def _state_variables(model) -> tuple[StateSpec, list]:
    attached = getattr(model, _SPEC_ATTR, None)
    if attached is not None and not attached[1]:
        raise _rewrite_error(
            f"Model '{model.name}' is a stateless twin: it has no state variables; its states "
            "are the extra inputs and outputs of each call.", "keep the states returned by "
            "twin([x, *states]) yourself, or use inference_model(model, batch_size=n) for a stateful model.")
    spec = state_spec(model)
    return spec, [info.layer.states[info.state_index] for info in spec]


def get_states(model) -> list[np.ndarray]:
    """Current recurrent states of a stateful model, in ``state_spec(model)`` order.

    Parameters
    ----------
    model : keras.Model
        A stateful model (the trained original or a `inference_model(model, batch_size)`).

    Returns
    -------
    list of numpy.ndarray
        One array of shape ``(batch_size, *shape)`` per state; row ``i`` is lane ``i``.
    """
    _, variables = _state_variables(model)
    sync = getattr(model, "jax_state_sync", None)
    if keras.backend.backend() == "jax" and callable(sync):
        sync()  # after fit/predict on JAX the trainer holds the newest values; write them back first
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


def set_states(model, arrays: Sequence[Any]) -> None:
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
    """
    spec, variables = _state_variables(model)
    if isinstance(arrays, (np.ndarray, str, bytes)) or not isinstance(arrays, (Sequence, Iterator)):
        raise ParameterError(f"arrays must be a list with one array per state, got {type(arrays).__name__}.",
                             f"pass a list of {len(variables)} arrays in state_spec(model) order ({spec.names}).")
    arrays = list(arrays)
    if len(arrays) != len(variables):
        raise ShapeError(f"expected {len(variables)} state arrays ({spec.names}), got {len(arrays)}.",
                         "pass one array per state, in state_spec(model) order.")
    checked = []
    for info, var, arr in zip(spec, variables, arrays):
        try:
            a = arr if isinstance(arr, np.ndarray) else np.asarray(
                keras.ops.convert_to_numpy(arr) if hasattr(arr, "shape") else arr)
        except Exception as exc:  # ragged lists, objects no backend converts
            raise ShapeError(f"state {info.name} cannot be read as one array ({type(exc).__name__}).",
                             "pass numeric arrays shaped as the model's state variables.") from None
        if a.dtype.kind not in "biuf":
            raise DTypeError(f"state {info.name} has dtype {a.dtype}, not numbers.",
                             "pass numeric arrays (e.g. rows taken from get_states or the twin's final states).")
        if tuple(a.shape) != tuple(var.shape):
            raise ShapeError(f"state {info.name}: expected shape {tuple(var.shape)}, got {tuple(a.shape)}.",
                             "pass arrays shaped exactly as the model's state variables.")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DataValueError(f"state {info.name} holds NaN/inf: every later step of those lanes would be NaN.",
                                 "pass finite states (reset_states(model) zeroes them).")
        checked.append(a.astype(info.dtype, copy=False))
    for var, arr in zip(variables, checked):
        var.assign(np.asarray(arr, dtype=var.dtype))


def reset_states(model) -> None:
    """Zero every recurrent state of a stateful model (Keras has no ``Model.reset_states``)."""
    _, variables = _state_variables(model)
    for var in variables:
        var.assign(np.zeros(tuple(var.shape), dtype=var.dtype))
