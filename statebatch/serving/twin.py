"""The twin builder: re-run a Keras model's graph on new tensors, rewriting its stateful RNN sites.

Keras 3 has no public "same graph with other RNN layers" (``clone_model`` makes fresh weights), so the
model's graph is walked as ``keras.src.ops.function.Function._run_through_graph`` does (see
:mod:`statebatch.serving.inference`, which builds its models with :class:`_Walker`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import keras
from keras import layers as L

from ..errors import UnsupportedModelError
from .spec import StateInfo, StateSpec

try:  # Internal class: public keras.Model(inputs, outputs) returns a Functional instance.
    from keras.src.models.functional import Functional
except ImportError as exc:  # pragma: no cover - only for other Keras layouts
    raise ImportError("statebatch.serving needs Keras 3 (keras.src.models.functional)") from exc

__all__: list[str] = []  # the builder's steps; the public API is statebatch.serving.inference

_SUPPORTED_RNN = (L.LSTM, L.GRU, L.SimpleRNN)
_STATE_KINDS = {L.LSTM: ("h", "c"), L.GRU: ("h",), L.SimpleRNN: ("h",)}


def _rewrite_error(problem: str, fix: str) -> UnsupportedModelError:
    """A refusal of a graph the twin builder cannot rewrite: the problem, then a ``Fix:`` line."""
    return UnsupportedModelError(problem, fix)


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
