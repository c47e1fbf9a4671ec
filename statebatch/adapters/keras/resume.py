"""Resuming :func:`fit_stateful` from its training backup: what is saved (weights, optimizer, metrics,
lane states), the model's signature a backup is matched by, and putting a backup back into a model.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ...errors import StoreError
from .backends import sync_trainer
from .state import KerasState


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
    sync_trainer(model)
    _assign(_weight_variables(model), arrays.get("weights", []), "weights", where)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        if not optimizer.built:  # its variables (moments, iteration count) exist only once built
            optimizer.build(model.trainable_variables)
        _assign(list(optimizer.variables), arrays.get("optimizer", []), "optimizer variables", where)
    state = KerasState(model)
    _assign(state.variables, arrays.get("states", []), "lane states", where)


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


