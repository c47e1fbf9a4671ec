"""``explain``: answer "what will Keras do with my shapes?" for the user's own numbers.

How many batches per epoch, when state is reset, how many parallel states exist and which sample
continues which, for stateless and stateful recurrent models (and, for statebatch results, the lanes,
resets and padding they hold).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ParameterError
from .result import Batched, Explanation

__all__ = ["explain", "Explanation"]


def _shape_of(obj: Any) -> tuple:
    if isinstance(obj, (tuple, list)) and all(d is None or isinstance(d, (int, np.integer)) for d in obj):
        shape = tuple(None if d is None else int(d) for d in obj)
    elif hasattr(obj, "shape"):
        shape = tuple(int(d) for d in obj.shape)
    else:
        raise ParameterError(f"explain needs an array or a shape tuple, got {type(obj).__name__}.",
                             "pass X, or a shape such as (1000, 20, 1).")
    if any(d is not None and d < 0 for d in shape):
        raise ParameterError(f"explain got negative dimensions in shape {shape}.", "pass sizes >= 0, e.g. (1000, 20, 1).")
    if len(shape) != 3 or shape[0] is None:
        raise ParameterError(
            f"explain needs (samples, timesteps, features) with a known sample count, got {shape}.",
            "pass the shape of X as a recurrent layer sees it, e.g. (1000, 20, 1).")
    return shape


def explain(obj: Any, batch_size: int | None = None, stateful: bool = False, *,
            verbose: bool = False) -> Explanation:
    """Explain how Keras batches ``obj`` and when it resets recurrent state.

    Parameters
    ----------
    obj : array ``(samples, timesteps, features)``, a shape tuple, or a statebatch result
        (:class:`~statebatch.Windows`, :class:`~statebatch.Arranged`, a bucketing).
    batch_size : int
        The ``batch_size`` given to ``fit`` (Keras' default is 32). Arranged results know theirs.
    stateful : bool
        Whether the recurrent layers are ``stateful=True``.
    verbose : bool
        Also print the explanation.

    Examples
    --------
    >>> print(explain((1000, 20, 1), batch_size=200, stateful=True))  # doctest: +ELLIPSIS
    statebatch explain: X (1000, 20, 1), batch_size=200, stateful=True
      - 5 batches per epoch ...
    """
    if isinstance(obj, Batched):  # statebatch results explain themselves
        result = obj.explain()
        if verbose:
            print(result)
        return result
    if not isinstance(stateful, (bool, np.bool_)):
        raise ParameterError(f"stateful must be True or False, got {stateful!r}.", "pass stateful=True or stateful=False.")
    shape = _shape_of(obj)
    if batch_size is None:
        batch_size = 32
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}.", "pass e.g. batch_size=32.")
    n, t, f = shape
    b = int(batch_size)
    n_batches = -(-n // b)
    last = n - (n_batches - 1) * b if n else 0
    lines, problems = [], []
    lines.append(
        f"{n_batches} batches per epoch ({n} samples / batch_size {b}"
        + (f"; the last batch holds {last}" if last != b else "") + f"): fit shows {n_batches}/{n_batches} "
        "steps.")
    lines.append(
        f"each sample is {'a variable number of' if t is None else t} timesteps of {f} feature(s); "
        f"the model's input is keras.Input(shape=({t}, {f})) and its batch axis stays None until fit "
        f"chooses batch_size={b}." if not stateful else
        f"each sample is {t} timesteps of {f} feature(s); a stateful model needs the batch size fixed "
        f"in the model: keras.Input(batch_shape=({b}, {t}, {f})).")
    if not stateful:
        lines.append(
            f"stateful=False: the {b} samples of a batch run in parallel as independent sequences, each "
            f"from zero state, and their states are dropped after the batch: {n_batches} resets per epoch, "
            f"one per batch. In effect all {n} samples are separate sequences; no state passes from one "
            "sample to another, inside a batch or across batches.")
        lines.append(f"{b} parallel states exist during a batch, one per sample (states are never shared "
                     "between the samples of a batch).")
        resets = n_batches
    else:
        lines.append(
            f"stateful=True: {b} parallel states, one per row. Keras never resets them by itself; "
            "they persist across batches and epochs until you reset them (layer.reset_state(), or "
            "statebatch.keras.LaneResetCallback per epoch/lane).")
        lines.append(
            f"sample i of batch k+1 continues sample i of batch k: sample {b} continues sample 0, "
            f"sample {b + 1} continues sample 1, ... (not the last sample of the previous batch). Each "
            f"row is a lane of {n_batches} chunks: {n_batches * t if t else '?'} steps of one stream.")
        lines.append("pass shuffle=False to fit; shuffling would break which sample continues which.")
        resets = 0
        if n % b:
            problems.append(
                f"{n} samples do not divide by batch_size {b}: Keras 3 fails at the last batch with "
                f"'Incompatible shapes: [{n % b},...] vs. [{b},...]'. Use statebatch.arrange_stateful, "
                f"or keep the first {n - n % b} samples.")
    expl = Explanation(shape=shape, batch_size=b, stateful=bool(stateful), n_batches=n_batches,
                       last_batch_size=last, parallel_states=b, resets_per_epoch=resets, lines=lines,
                       problems=problems)
    if verbose:
        print(expl)
    return expl
