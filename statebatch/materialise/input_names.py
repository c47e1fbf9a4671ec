"""Model inputs of a forecasting batch by name: which batch key feeds which input of a Keras model.

Keras 3 matches a dict to a dict-input model by sorted position when the dict has a key the model has no
input for (only a warning), so an extra key such as ``"scale"`` would silently land in another input:
:func:`model_inputs` reads a model's input names and checks them against a batch's keys (a key held with
0 columns counts as absent), and :func:`split_xy` cuts ``(inputs, y)`` in the form the model takes.
No Keras import: the model is only read.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import ParameterError
from ..sources.pandas_frames import refuse_unordered

__all__ = ["MODEL_INPUT_KEYS", "model_inputs", "split_xy"]


def _names(value: Any, what: str) -> list:
    """``value`` as a list of names (one name, or an iterable of distinct names; None: none)."""
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    refuse_unordered(value, what)
    out = list(value)
    if len(set(map(str, out))) != len(out):
        raise ParameterError(f"{what} names a column twice: {out}.", f"list each column once in {what}.")
    return out


#: The keys of a forecasting batch that are model inputs (in this order). ``y`` is the target; ``scale``
#: and the observed-value masks serve the loss and the inversion of predictions, never the model.
MODEL_INPUT_KEYS = ("past", "future", "static", "mask")


#: The fix for a model input whose batch key has 0 columns: the argument of make_windows that fills it.
_EMPTY_FIX = {"future": "known_cols=[...] (or time_features=[...])", "static": "static_cols=[...]"}


def model_inputs(model: Any, keys: Sequence[str] | Mapping[str, Any], *,
                 empty: Sequence[str] = ()) -> tuple[list[str], str]:
    """The input names of a Keras model and how it takes them, checked against a batch's ``keys``.

    Returns ``(names, form)``: ``form`` is ``"dict"`` (a model built from a dict of inputs: the dict's
    keys), ``"list"`` (a list of inputs: their names, in order) or ``"single"`` (one input: its name).
    The model is only read (no Keras import here): anything with an ``input`` structure of named tensors.

    Parameters
    ----------
    model : keras.Model
    keys : sequence of str, or a batch (mapping of arrays)
        The batch's keys. A batch's ``future``/``static`` with 0 columns count as absent.
    empty : sequence of str
        Keys the batch holds with 0 columns (:attr:`ForecastSpec.empty_keys`), absent for the model: feeding
        a ``(N, 0)`` array to an input that expects columns fails inside Keras.

    Raises
    ------
    ParameterError
        The model's inputs cannot be read, or name keys the batch does not have or has with 0 columns (the
        error names them and the argument of ``make_windows`` that fills them).

    Examples
    --------
    >>> class Tensor:  # a stand-in for keras.Input(name=...)
    ...     def __init__(self, name): self.name = name
    >>> class Model:
    ...     input = [Tensor("static"), Tensor("past")]
    >>> model_inputs(Model(), ["past", "future", "static", "y", "scale"])
    (['static', 'past'], 'list')
    """
    try:
        struct = model.input
    except (AttributeError, ValueError) as exc:  # an unbuilt Sequential or a subclassed model
        raise ParameterError(f"the inputs of {type(model).__name__} cannot be read ({exc}).",
                             "build a functional model with named inputs (keras.Input(..., name='past')), or "
                             "pass inputs=[...] with the batch keys in the order the model takes them.") from None
    if isinstance(struct, Mapping):
        names, form = [str(k) for k in struct], "dict"
    elif isinstance(struct, (list, tuple)):
        names, form = [str(getattr(t, "name", "?")) for t in struct], "list"
    else:
        names, form = [str(getattr(struct, "name", "?"))], "single"
    if isinstance(keys, Mapping):
        empty = [*empty, *_zero_width(keys)]
    _check_not_empty(names, empty)
    usable = [k for k in keys if k != "y" and k not in empty]
    missing = [n for n in names if n not in usable]
    if missing:
        raise ParameterError(f"the model's inputs {missing} are not keys of the forecasting batch (model inputs: "
                             f"{names}; batch keys: {usable}); feeding it would put arrays in the wrong inputs.",
                             "name the model's inputs after the batch keys (keras.Input(..., name='past'), "
                             "'future', 'static', 'mask'), or build the windows with the inputs the model expects.")
    return names, form


def _zero_width(batch: Mapping[str, Any]) -> list[str]:
    """The ``future``/``static`` keys of ``batch`` with 0 columns (windows built without their columns)."""
    return [k for k in _EMPTY_FIX if k in batch and getattr(batch[k], "ndim", 0) >= 2 and batch[k].shape[-1] == 0]


def _check_not_empty(names: Sequence[str], empty: Sequence[str]) -> None:
    """Refuse model inputs fed by a 0-column key: the windows were built without the columns behind it."""
    bad = [n for n in names if n in empty]
    if bad:
        raise ParameterError(f"the model's inputs {bad} would get arrays with 0 columns: the windows were built "
                             "without the columns behind them.",
                             "build the windows with " + " and ".join(_EMPTY_FIX[n] for n in bad)
                             + ", or drop those inputs from the model.")


def split_xy(batch: Mapping[str, Any], inputs: Sequence[str] | None = None, *,
             model: Any = None) -> tuple[Any, Any]:
    """A forecasting batch as Keras takes it: ``(inputs, y)``.

    By default ``inputs`` holds only the model-input keys present (:data:`MODEL_INPUT_KEYS`: ``past``,
    ``future``, ``static``, ``mask``); ``scale`` and the observed-value masks are loss and inversion aids,
    left out (read them from the batch). ``inputs=[...]`` names the keys instead. ``model=`` matches a
    Keras model's own inputs: exactly its dict keys (a model built from a dict of inputs), or a list in
    the order of its inputs' names (a list of inputs), or the one array; a model input the batch lacks
    (or holds with 0 columns: ``static`` without ``static_cols``, ``future`` without ``known_cols``)
    raises :class:`~statebatch.errors.ParameterError` naming it.

    Why: Keras 3 matches a dict to a dict-input model by sorted position when the dict has a key the model
    has no input for (only a warning), so an extra key such as ``"scale"`` silently lands in another input.
    Pass ``model=`` (or keep to the default keys with a model that takes all of them).

    Parameters
    ----------
    batch : mapping
        A forecasting batch (``windows.batch(k)`` or ``windows.arrays()``).
    inputs : sequence of str, optional
        Keys to pass, in this order (a dict).
    model : keras.Model, optional
        The model the inputs are for.

    Returns
    -------
    (inputs, y) : inputs a dict (or, with a list-input model, a list; with a one-input model, the array),
        y ``(N, n_ahead, targets)``.

    Examples
    --------
    >>> import numpy as np
    >>> batch = {"past": np.zeros((2, 3, 1)), "future": np.zeros((2, 1, 0)), "y": np.ones((2, 1, 1)),
    ...          "scale": np.ones((2, 2, 1))}
    >>> inputs, y = split_xy(batch)
    >>> sorted(inputs), y.shape
    (['future', 'past'], (2, 1, 1))
    """
    if not isinstance(batch, Mapping) or "y" not in batch:
        raise ParameterError(f"split_xy needs a forecasting batch (a mapping with 'y'), got {type(batch).__name__}.",
                             "pass windows.arrays() or windows.batch(k) of forecasting windows.")
    if model is not None:
        if inputs is not None:
            raise ParameterError("split_xy got both inputs= and model=.", "pass one of them: model= reads the names.")
        names, form = model_inputs(model, batch)  # a 0-column future/static counts as absent
        if form == "dict":
            return {k: batch[k] for k in names}, batch["y"]
        return ([batch[k] for k in names] if form == "list" else batch[names[0]]), batch["y"]
    if inputs is None:
        return {k: batch[k] for k in MODEL_INPUT_KEYS if k in batch}, batch["y"]
    names = _names(inputs, "inputs")
    absent = [k for k in names if k not in batch or k == "y"]
    if absent:
        raise ParameterError(f"inputs {absent} are not input keys of this batch (keys: {[k for k in batch if k != 'y']}).",
                             "name keys the windows were built with (e.g. 'mask' needs min_timesteps=...).")
    return {k: batch[k] for k in names}, batch["y"]
