"""Duck-typed look into Keras models, so validators need not import keras.

Keras 3 facts used here (see shared KERAS_FACTS.md): a stateful RNN layer has ``stateful=True``
and keeps its state in ``layer.states`` (variables of shape ``(batch, units)``); wrappers keep
the wrapped layer in ``.layer`` (``Bidirectional`` in ``forward_layer``/``backward_layer``);
models and ``Sequential`` list sub-layers in ``.layers``.
"""

from __future__ import annotations

from typing import Any, Iterator


def iter_layers(model: Any) -> Iterator[Any]:
    """Every layer inside ``model``, depth first, through nested models and wrappers."""
    seen: set[int] = set()
    stack = [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if layer is not model:
            yield layer
        children = []
        for attr in ("forward_layer", "backward_layer", "layer"):
            child = getattr(layer, attr, None)
            if child is not None and hasattr(child, "weights"):
                children.append(child)
        sub = getattr(layer, "layers", None)
        if isinstance(sub, (list, tuple)):
            children.extend(sub)
        stack.extend(reversed(children))


def stateful_layers(model: Any) -> list[Any]:
    """The stateful recurrent layers of ``model`` (those with state variables)."""
    # Bidirectional mirrors its two inner layers' states; count those inner layers only.
    return [layer for layer in iter_layers(model)
            if getattr(layer, "stateful", False) and hasattr(layer, "states")
            and not hasattr(layer, "forward_layer")]


def is_model(obj: Any) -> bool:
    """A Keras model (functional, Sequential or subclassed): it has layers and inputs to read."""
    return hasattr(obj, "layers") and hasattr(obj, "get_config") and not isinstance(obj, type)


def is_symbolic_input(obj: Any) -> bool:
    """A ``keras.Input(...)`` (a KerasTensor): a shape without values."""
    return type(obj).__name__ == "KerasTensor" and hasattr(obj, "shape")


def input_shape(model: Any) -> tuple | None:
    """``(batch, timesteps, features)`` of the model's first input, ``None`` entries unknown."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if inputs:
        return tuple(None if d is None else int(d) for d in inputs[0].shape)
    return None


def output_shape(model: Any) -> tuple | None:
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if outputs:
        return tuple(None if d is None else int(d) for d in outputs[0].shape)
    return None


def fixed_batch_size(model: Any) -> int | None:
    shape = input_shape(model)
    if shape and shape[0] is not None:
        return shape[0]
    for layer in stateful_layers(model):  # a stateful layer knows its batch from its states
        for v in getattr(layer, "states", None) or []:
            if v is not None and getattr(v, "shape", None) is not None and len(v.shape) >= 1:
                return int(v.shape[0])
    return None


def state_variables(layer: Any) -> list[Any]:
    """The state variables of a stateful RNN layer (h, and c for an LSTM)."""
    states = getattr(layer, "states", None) or []
    return [v for v in states if v is not None and hasattr(v, "assign")]


def backend_warnings(stateful: list[Any]) -> list[str]:
    """What a plain Keras ``fit``/``evaluate``/``predict`` would get wrong with these stateful layers
    on the current backend (KERAS_FACTS.md, "Backends"); empty where statebatch tracks their state.

    Reads the backend from the already imported keras module: a model exists, so keras is loaded.
    """
    import sys

    keras = sys.modules.get("keras")
    if not stateful or keras is None:
        return []
    backend = keras.backend.backend()
    untracked = [layer.name for layer in stateful if not getattr(layer, "_statebatch_tracked", False)]
    if not untracked:
        return []
    fix = ("train and predict through statebatch (statebatch.keras.fit_stateful, or callbacks=[LaneResetCallback(...)]) "
           "or wrap the Keras calls in `with statebatch.keras.stateful_scope(model):`.")
    if backend == "jax":
        return [f"JAX backend: Keras' fit/evaluate/predict do not carry the state of stateful layers {untracked} from "
                "batch to batch (their state variables are not among model.non_trainable_variables), so a plain "
                "model.fit trains a stateless model without any error. To carry it, " + fix]
    if backend == "torch":
        cudnn = [layer.name for layer in stateful if getattr(layer, "use_cudnn", None) is not False
                 and not getattr(layer, "_statebatch_tracked", False)]
        if cudnn:
            return [f"torch backend: fitting stateful layers {cudnn} fails in plain Keras with 'one of the variables "
                    "needed for gradient computation has been modified by an inplace operation'. To avoid it, " + fix]
    return []
