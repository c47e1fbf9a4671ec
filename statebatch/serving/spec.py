"""What a served model's recurrent states are: :class:`StateSpec`, one :class:`StateInfo` per state tensor,
in the order of the twin's state inputs and outputs and of ``get_states``/``set_states``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["StateInfo", "StateSpec"]

# a model made by inference_model carries its spec (and whether it holds state variables) here
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


def _attach_spec(model, spec: StateSpec, holds_variables: bool) -> None:
    object.__setattr__(model, _SPEC_ATTR, (spec, holds_variables))
