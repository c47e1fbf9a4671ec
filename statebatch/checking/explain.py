"""``explain``: answer "what will Keras do with my shapes?" for the user's own numbers.

How many batches per epoch, when state is reset, how many parallel states exist and which sample
continues which, for stateless and stateful recurrent models (and, for statebatch results, the lanes,
resets and padding they hold).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._args import check_optional_int, plural
from .. import _introspect
from . import layout
from ..errors import ParameterError, ShapeError
from ..results.batched import Batched, Explanation

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
    zero = [name for name, d in zip(("samples", "timesteps", "features"), shape) if d == 0]
    if zero:
        # a recurrent layer cannot run over 0 steps or 0 features, and 0 samples is no epoch at all
        error = ParameterError if isinstance(obj, (tuple, list)) else ShapeError
        raise error(f"explain got 0 {' and 0 '.join(zero)} in shape {shape}: there is nothing for a recurrent layer "
                    "to run over.", "pass sizes >= 1, e.g. (1000, 20, 1) (a variable timestep count is None).")
    return shape


def explain(obj: Any, batch_size: int | None = None, stateful: bool = False, *,
            verbose: bool = False) -> Explanation:
    """Explain how Keras batches ``obj`` and when it resets recurrent state.

    Parameters
    ----------
    obj : array ``(samples, timesteps, features)``, a shape tuple, a statebatch result
        (:class:`~statebatch.Windows`, :class:`~statebatch.Arranged`, a bucketing), or a Keras model or
        ``keras.Input`` (its batch shape, whether it keeps state, and how to predict at another batch
        size; for an ``Input`` pass ``stateful``).
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
      - stateful=True: Keras never resets the state by itself; row i of batch k+1 continues row i of batch k: ...
      - 5 batches per epoch (1000 samples / batch_size 200): fit shows 5/5 steps.
    ...
    """
    if isinstance(obj, Batched):  # statebatch results explain themselves
        return _explain_result(obj, verbose)
    if not isinstance(stateful, (bool, np.bool_)):
        raise ParameterError(f"stateful must be True or False, got {stateful!r}.", "pass stateful=True or stateful=False.")
    if _introspect.is_model(obj) or _introspect.is_symbolic_input(obj):
        result = _explain_model(obj, batch_size, bool(stateful))
        if verbose:
            print(result)
        return result
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
    batches = (f"{plural(n_batches, 'batch')} per epoch ({plural(n, 'sample')} / batch_size {b}"
               + (f"; the last batch holds {last}" if last != b else "") + f"): fit shows {n_batches}/{n_batches} "
               "steps.")
    if not stateful:
        # The answer to "when is state reset?" comes first.
        lines.append(
            "stateful=False: every sample starts from zero state; no state passes from one sample to another, "
            f"inside a batch or across batches. The {plural(min(b, n), 'sample')} of a batch run side by side as "
            "independent sequences and their states are dropped after the batch.")
        lines.append(batches)
        lines.append(
            f"each sample is {'a variable number of' if t is None else t} timesteps of {f} feature(s); the model's "
            f"input is keras.Input(shape=({t}, {f})) and its batch axis stays None until fit chooses "
            f"batch_size={b}.")
        resets = n_batches
    else:
        if n_batches > 1:
            lines.append(
                "stateful=True: Keras never resets the state by itself; row i of batch k+1 continues row i of batch "
                f"k: sample {b} continues sample 0, sample {b + 1} continues sample 1, ... (not the last sample of "
                "the previous batch). State persists across batches and epochs until you reset it "
                "(layer.reset_state(), or statebatch.keras.LaneResetCallback).")
        else:
            lines.append(
                "stateful=True: Keras never resets the state by itself. There is one batch per epoch, so within an "
                "epoch no sample continues another; each row's state carries into the same row of the next epoch "
                "unless you reset it (layer.reset_state(), or statebatch.keras.LaneResetCallback).")
        lines.append(batches)
        lines.append(
            f"each sample is {t} timesteps of {f} feature(s); a stateful model needs the batch size fixed in the "
            f"model: keras.Input(batch_shape=({b}, {t}, {f})), which keeps {plural(b, 'parallel state')}, one per "
            f"row. Keras treats each row as a lane of {plural(n_batches, 'chunk')}"
            + (f": {n_batches * t} steps of one stream." if t else "."))
        lines.append("pass shuffle=False to fit; shuffling would break which sample continues which.")
        resets = 0
        if n < b:
            problems.append(
                f"batch_size {b} is larger than the {plural(n, 'sample')}: a stateful model needs full batches "
                f"(Keras 3 fails with 'Incompatible shapes: [{n},...] vs. [{b},...]'). Use batch_size <= {n}, or "
                "statebatch.arrange_stateful(series, timesteps, batch_size) to cut the series into that many lanes; to "
                f"predict {plural(n, 'row')} with a model trained at batch size {b}, use "
                f"statebatch.inference_model(model, {n}) (the same weights at batch size {n}).")
        elif n % b:
            problems.append(
                f"{plural(n, 'sample')} do not divide by batch_size {b}: Keras 3 fails at the last batch with "
                f"'Incompatible shapes: [{n % b},...] vs. [{b},...]'. Use statebatch.arrange_stateful, or keep the "
                f"first {n - n % b} samples; to predict {plural(n, 'row')} at once, use statebatch.inference_model(model, "
                f"{n}) (the same weights at batch size {n}).")
    kind = None
    if _has_data(obj) and n > 0 and t:
        kind = _read_layout(obj, b, bool(stateful), n_batches, t, lines, problems)
    expl = Explanation(shape=shape, batch_size=b, stateful=bool(stateful), n_batches=n_batches,
                       last_batch_size=last, parallel_states=b, resets_per_epoch=resets, lines=lines,
                       problems=problems, layout=kind)
    if verbose:
        print(expl)
    return expl


def _explain_result(made: Any, verbose: bool) -> Explanation:
    """A statebatch result's own explanation (every concrete result, Windows, Arranged or Bucketing,
    has ``explain()``)."""
    result = made.explain()
    if verbose:
        print(result)
    return result


def _explain_model(obj: Any, batch_size: int | None, stateful: bool) -> Explanation:
    """What a Keras model (or its ``keras.Input``) does with batches: its input shape, whether and how
    it keeps state, the batch size it needs, and how to predict at another batch size."""
    batch_size = check_optional_int("batch_size", batch_size, 1)
    is_model = _introspect.is_model(obj)
    shape = _introspect.input_shape(obj) if is_model else tuple(None if d is None else int(d) for d in obj.shape)
    what = f"model {getattr(obj, 'name', type(obj).__name__)!r}" if is_model else "this keras.Input"
    if shape is None:
        raise ParameterError(f"{what} has no input shape yet (a Sequential model without an Input is built only "
                             "when it first sees data).",
                             "start the model with keras.Input(batch_shape=(B, T, F)) (stateful) or "
                             "keras.Input(shape=(T, F)), or call explain on X with batch_size=... instead.")
    if len(shape) != 3:
        raise ShapeError(f"{what} takes inputs of shape {shape}, not (batch, timesteps, features).",
                         "explain a recurrent model whose input is keras.Input(shape=(T, F)) or batch_shape=(B, T, F).")
    layers = [layer.name for layer in _introspect.stateful_layers(obj)] if is_model else []
    if is_model:
        stateful = bool(layers)
    fixed = shape[0] if shape[0] is not None else (_introspect.fixed_batch_size(obj) if is_model else None)
    _, t, f = shape
    steps = "a variable number of" if t is None else str(t)
    lines, problems = [], []
    if stateful:
        b = fixed if fixed is not None else batch_size
        owner = f"{what} has stateful layers {layers}" if layers else f"{what} feeds stateful layers"
        if b is None:
            problems.append(f"{owner} but no fixed batch size: Keras cannot keep one state per row. Build it with "
                            f"keras.Input(batch_shape=(B, {t}, {f})), B = the number of lanes.")
            b = 1
        lines.append(
            f"{owner}: Keras never resets the state by itself; it keeps {plural(b, 'parallel state')}, one per row, "
            f"and row i of batch k+1 continues row i of batch k until you reset it (layer.reset_state(), or "
            "statebatch.keras.LaneResetCallback).")
        lines.append(
            f"input batch_shape ({b}, {t}, {f}): every fit/evaluate/predict batch holds exactly {b} rows of {steps} "
            f"timesteps x {f} feature(s), so X's row count must be a multiple of {b} (pass batch_size={b}, "
            f"shuffle=False); statebatch.arrange_stateful(series, {t or 'T'}, {b}) cuts series into {b} lanes.")
        lines.append(
            f"to predict at another batch size (one row, one series, thousands of series) use "
            f"statebatch.inference_model(model, n) (the same weights, stateful at batch size n) or "
            f"statebatch.inference_model(model) (a free batch axis with explicit states); model.predict on a row "
            f"count that is not a multiple of {b} fails in Keras with 'Expected batch size: {b}'.")
        if batch_size is not None and fixed is not None and batch_size != fixed:
            problems.append(f"batch_size={batch_size} but {what} is built for batch size {fixed}: pass "
                            f"batch_size={fixed}, or predict at {batch_size} with "
                            f"statebatch.inference_model(model, {batch_size}).")
        n_rows = b
    else:
        b = batch_size if batch_size is not None else (fixed or 32)
        lines.append(
            f"{what} has no stateful layers: every sample starts from zero state; no state passes from one sample "
            "to another, inside a batch or across batches.")
        lines.append(
            f"input shape {shape}: each sample is {steps} timesteps of {f} feature(s)"
            + (f"; the batch axis is fixed at {fixed}, so batches must hold {fixed} rows." if fixed is not None else
               f"; the batch axis is free, so fit/predict take any batch_size (here {b})."))
        n_rows = b
    expl = Explanation(shape=(n_rows, t, f), batch_size=b, stateful=stateful, n_batches=1, last_batch_size=b,
                       parallel_states=b, resets_per_epoch=0 if stateful else 1, lines=lines, problems=problems,
                       extra={"model_input_shape": shape, "stateful_layers": layers})
    return expl


def _has_data(obj: Any) -> bool:
    """An array with values (not a shape tuple)."""
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, tuple)


def _read_layout(X: Any, b: int, stateful: bool, n_batches: int, t: int, lines: list[str],
                 problems: list[str]) -> str:
    """Say what the data looks like (statebatch.layout); a stateful layout mistake becomes a problem."""
    v = layout.detect_layout(X, b)
    sampled = f" ({v.rows_checked} of {v.n_rows} rows sampled)" if v.sampled else ""
    if v.exact:
        lines.append(f"what the data looks like{sampled}: {v.kind.replace('_', ' ')} (exact evidence). {v.evidence}")
    else:
        # a reading of the values, not a fact: say how sure it is
        lines.append(f"what the data looks like{sampled}: {v.kind.replace('_', ' ')} (a statistical reading, "
                     f"confidence {v.confidence:.2f}, not proof). {v.evidence}")
    if v.kind == layout.CHANNELS_FIRST:
        problems.append(f"X is likely transposed (channels-first): {v.fix}")
    elif stateful and v.is_mistake and v.exact:
        problems.append(f"the rows are {v.kind.replace('_', ' ')}, not lanes: a stateful model would carry "
                        f"state from each row into a row that does not continue it. Fix: {v.fix}")
    elif stateful and v.is_mistake:
        problems.append(f"the rows may be {v.kind.replace('_', ' ')}, not lanes (a statistical reading, "
                        f"confidence {v.confidence:.2f}): if so, a stateful model would carry state from each row "
                        f"into a row that does not continue it. Fix: {v.fix}")
    elif stateful and v.kind == layout.LANES and n_batches > 1:
        lines.append(f"that is the layout a stateful model needs: each of the {plural(b, 'row')} continues "
                     "in the same row of the next batch.")
    elif not stateful and v.kind in (layout.LANES, layout.NATURAL) and n_batches > 1:
        lines.append("the rows continue one another, but with stateful=False that continuity is not used: each "
                     "sample starts from zero state (use a stateful model with lanes to carry it).")
    return v.kind
