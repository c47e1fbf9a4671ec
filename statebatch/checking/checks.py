"""Small named checks, in scikit-learn's ``check_*`` style; :func:`statebatch.validate` composes them.

Each check raises a :class:`~statebatch.errors.StatebatchError` whose message says what is wrong, the
shapes involved and (after ``Fix:``) what to do; checks for suspicious-but-legal things return
warning strings instead. Every check can be called on its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _introspect
from . import layout
from .._args import check_int, plural
from ..errors import (BatchSizeError, DataValueError, DTypeError, LengthMismatchError, ModelMismatchError,
                     OverlappingWindowsError, ParameterError, ShapeError, ShuffleError, StatefulLayoutError)
from ..sources.series import dtype_error, non_finite_effect, non_finite_found


def check_array(obj: Any, name: str = "X") -> np.ndarray:
    """``obj`` as a numeric ndarray (pandas, tensors and nested lists accepted); ragged input refused.

    Examples
    --------
    >>> check_array([[1.0, 2.0], [3.0, 4.0]]).shape
    (2, 2)
    >>> check_array([[1.0, 2.0], [3.0]])
    Traceback (most recent call last):
        ...
    statebatch.errors.DTypeError: X is ragged: its rows have different lengths [1, 2] and cannot form one array...
    """
    if hasattr(obj, "to_numpy") and type(obj).__module__.startswith("pandas"):
        if type(obj).__name__ == "DataFrame" and name == "X":
            raise ShapeError(
                f"X is a pandas DataFrame of shape {obj.shape}: a 2-D table (steps, features), not "
                "[samples, timesteps, features].",
                "cut it into windows first: statebatch.make_windows(df, timesteps=...).")
        obj = obj.to_numpy()
    if isinstance(obj, np.ndarray):
        arr = obj
    elif hasattr(obj, "numpy") and hasattr(obj, "shape") and hasattr(obj, "dtype"):  # tf / torch tensors
        arr = np.asarray(obj.detach().cpu() if hasattr(obj, "detach") else obj)
    else:
        try:
            arr = np.asarray(obj)
        except (ValueError, TypeError):
            lens = sorted({len(r) for r in obj if hasattr(r, "__len__")})[:5] if hasattr(obj, "__iter__") else []
            raise DTypeError(
                f"{name} is ragged: its rows have different lengths {lens} and cannot form one array.",
                "pad them to one length (statebatch bucketing, or keras.utils.pad_sequences(..., "
                "dtype='float32')) or window each series with statebatch.make_windows(list_of_series, ...).",
            ) from None
    problem = dtype_error(arr, name)
    if problem:
        raise problem
    return arr


def check_rank(X: np.ndarray, rank: int = 3, model_shape: tuple | None = None) -> None:
    """X has the rank a recurrent layer needs (3: ``[samples, timesteps, features]``).

    Examples
    --------
    >>> check_rank(np.zeros((4, 10, 2)))            # fine: returns None
    >>> check_rank(np.zeros((4, 10)))
    Traceback (most recent call last):
        ...
    statebatch.errors.ShapeError: X is 2-D (4, 10); a recurrent layer needs 3-D [samples, timesteps, features].
      Fix: if each row is one sample of 10 timesteps of a single feature, use X[..., None] (shape (4, 10, 1))...
    """
    if X.ndim == rank:
        return
    shape = X.shape
    if rank != 3:
        raise ShapeError(f"X has shape {shape} but the model's input is {model_shape} (rank {rank}).",
                         "reshape X to the model's input rank.")
    if X.ndim == 1:
        raise ShapeError(
            f"X is 1-D {shape}; a recurrent layer needs 3-D [samples, timesteps, features].",
            f"if X is one series of {shape[0]} steps, cut it into windows: statebatch.make_windows(X, "
            f"timesteps=T) (or arrange_stateful for a stateful model); if each value is its own sample, "
            f"X.reshape({shape[0]}, 1, 1).")
    if X.ndim == 2:
        raise ShapeError(
            f"X is 2-D {shape}; a recurrent layer needs 3-D [samples, timesteps, features].",
            f"if each row is one sample of {shape[1]} timesteps of a single feature, use X[..., None] "
            f"(shape {shape + (1,)}); if X is one series of {shape[0]} steps x {shape[1]} features, cut it "
            "into windows with statebatch.make_windows(X, timesteps=T).")
    if X.ndim == 4:
        raise ShapeError(
            f"X is 4-D {shape}; a recurrent layer needs 3-D [samples, timesteps, features].",
            f"flatten the per-step features: X.reshape({shape[0]}, {shape[1]}, {shape[2] * shape[3]}), "
            "or use ConvLSTM2D / TimeDistributed for image sequences.")
    raise ShapeError(f"X has {X.ndim} dimensions {shape}; a recurrent layer needs 3-D "
                     "[samples, timesteps, features].", "reshape X to (samples, timesteps, features).")


def check_not_empty(X: np.ndarray) -> None:
    """X has at least one sample, timestep and feature.

    Examples
    --------
    >>> check_not_empty(np.zeros((0, 3, 1)))
    Traceback (most recent call last):
        ...
    statebatch.errors.DataValueError: X is empty: shape (0, 3, 1).
      Fix: pass at least one sample with at least one time step and one feature.
    """
    if X.shape[0] == 0 or 0 in X.shape[1:]:
        raise DataValueError(f"X is empty: shape {X.shape}.",
                             "pass at least one sample with at least one time step and one feature.")


def check_finite(arr: np.ndarray, name: str = "X") -> None:
    """No NaN or inf (the loss becomes NaN, or inf, at the first batch that holds one).

    Examples
    --------
    >>> check_finite(np.array([[0.5, np.nan]]))
    Traceback (most recent call last):
        ...
    statebatch.errors.DataValueError: X holds 1 NaN value(s) (first at index (0, 1)); ...
    >>> check_finite(np.array([[0.5, np.inf]]))
    Traceback (most recent call last):
        ...
    statebatch.errors.DataValueError: X holds 1 inf value(s) (first at index (0, 1)); a recurrent network turns ...
    """
    if not np.issubdtype(arr.dtype, np.floating):
        return
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(bad.sum()) - n_nan
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    fixes = []
    if n_nan:
        fixes.append("fill or interpolate missing values in the raw series before windowing (e.g. "
                     "pd.Series.interpolate(), or mask them with a pad value and a Masking layer)")
    if n_inf:
        fixes.append("find where the infinities come from (a division by zero, a log of 0) and replace them (e.g. "
                     "np.clip or np.nan_to_num)")
    raise DataValueError(
        f"{name} holds {non_finite_found(n_nan, n_inf)} (first at index {where}); {non_finite_effect(n_nan, n_inf)} "
        "at the first batch that contains one.",
        "; ".join(fixes) + ", or drop those samples: keep = np.isfinite(X).all(axis=(1, 2)).")


def check_timesteps(X: np.ndarray, expected: int | None, model_shape: tuple | None = None) -> None:
    """X has the model's number of timesteps (Keras 3 may accept a mismatch silently); a swapped
    time and feature axis is named as such.

    Examples
    --------
    >>> check_timesteps(np.zeros((8, 3, 10)), 10)
    Traceback (most recent call last):
        ...
    statebatch.errors.ModelMismatchError: X has 3 timesteps (shape (8, 3, 10)) but the model expects 10 ...
      Fix: transpose it: X = X.transpose(0, 2, 1) (shape (8, 10, 3)).
    """
    if expected is None or X.ndim != 3 or X.shape[1] == expected:
        return
    shown = model_shape or (None, expected, None)
    if X.shape[2] == expected:  # the axes swapped: the commonest cause of a wrong time axis
        raise ModelMismatchError(
            f"X has {X.shape[1]} timesteps (shape {X.shape}) but the model expects {expected} (input shape {shown}), "
            f"and X's last axis has {expected}: X looks channels-first (samples, features, timesteps).",
            f"transpose it: X = X.transpose(0, 2, 1) (shape ({X.shape[0]}, {X.shape[2]}, {X.shape[1]})).")
    raise ModelMismatchError(
        f"X has {X.shape[1]} timesteps (shape {X.shape}) but the model expects {expected} (input shape {shown}). "
        "Keras 3 may accept this without any error.",
        f"window the series with timesteps={expected} (statebatch.make_windows(series, {expected})), or build the "
        f"model with keras.Input(shape=(None, {X.shape[2]})) to accept any length.")


def check_features(X: np.ndarray, expected: int | None, model_shape: tuple | None = None) -> None:
    """X has the model's number of features.

    Examples
    --------
    >>> check_features(np.zeros((8, 10, 3)), 3)        # fine: returns None
    >>> check_features(np.zeros((8, 10, 3)), 4)
    Traceback (most recent call last):
        ...
    statebatch.errors.ModelMismatchError: X has 3 features (shape (8, 10, 3)) but the model expects 4 ...
    """
    if expected is None or X.shape[-1] == expected:
        return
    shown = model_shape or (None, X.shape[1] if X.ndim > 1 else None, expected)
    hint = ""
    if X.ndim == 3 and X.shape[1] == expected:
        hint = (" The sizes look swapped: X may be channels-first (samples, features, timesteps); "
                "use X.transpose(0, 2, 1).")
    raise ModelMismatchError(
        f"X has {X.shape[-1]} features (shape {X.shape}) but the model expects {expected} (input shape {shown})."
        + hint,
        "give X the model's feature columns (X[..., cols]), or build the model with "
        f"keras.Input(shape=({X.shape[1] if X.ndim > 1 else '...'}, {X.shape[-1]})).")


def check_targets(X: np.ndarray, y: Any, model_output: tuple | None = None) -> np.ndarray:
    """y has one entry per sample, finite values and a shape the model's output can match.

    Examples
    --------
    >>> check_targets(np.zeros((4, 10, 2)), [0.0, 1.0, 2.0, 3.0]).shape
    (4,)
    >>> check_targets(np.zeros((4, 10, 2)), [0.0, 1.0, 2.0])
    Traceback (most recent call last):
        ...
    statebatch.errors.LengthMismatchError: X has 4 samples but y has 3 (X (4, 10, 2), y (3,)).
      Fix: give exactly one target per sample; make_windows(..., targets=...) builds aligned X and y.
    """
    ya = check_array(y, "y")
    n = X.shape[0]
    if ya.ndim == 0 or len(ya) != n:
        raise LengthMismatchError(
            f"X has {n} samples but y has {0 if ya.ndim == 0 else len(ya)} (X {X.shape}, y {ya.shape}).",
            "give exactly one target per sample; make_windows(..., targets=...) builds aligned X and y.")
    check_finite(ya, "y")
    if model_output is not None:
        out_rank = len(model_output)
        if ya.ndim > out_rank:
            raise ModelMismatchError(
                f"y has shape {ya.shape} (one target per timestep) but the model outputs {model_output}.",
                "set return_sequences=True on the last recurrent layer (and wrap the head in TimeDistributed if "
                "needed), or use one target per sample.")
        if (ya.ndim == out_rank and model_output[-1] is not None and ya.shape[-1] != model_output[-1]
                and not (np.issubdtype(ya.dtype, np.integer) and ya.shape[-1] == 1)):
            raise ModelMismatchError(
                f"y has {ya.shape[-1]} value(s) per target (shape {ya.shape}) but the model outputs "
                f"{model_output[-1]} (output shape {model_output}).",
                f"end the model with a layer of {ya.shape[-1]} unit(s) (e.g. Dense({ya.shape[-1]})), or select the "
                "target columns you meant (target_features=... / target_cols=...).")
        if out_rank == 3 and ya.ndim == 2 and not np.issubdtype(ya.dtype, np.integer):
            raise ModelMismatchError(
                f"the model returns sequences {model_output} but y has one target per sample {ya.shape}; Keras would "
                "broadcast them against every timestep.",
                "set return_sequences=False on the last recurrent layer, or give per-timestep targets "
                "(make_windows(..., return_sequences=True)).")
    return ya


def check_sample_weight(X: np.ndarray, sample_weight: Any) -> np.ndarray:
    """One finite, non-negative weight per sample (or per sample and timestep).

    Examples
    --------
    >>> check_sample_weight(np.zeros((3, 5, 1)), [1.0, 1.0, 0.0])
    array([1., 1., 0.])
    >>> check_sample_weight(np.zeros((3, 5, 1)), [1.0, -1.0, 0.0])
    Traceback (most recent call last):
        ...
    statebatch.errors.DataValueError: sample_weight has negative, NaN or inf entries.
      Fix: weights must be finite and >= 0 (0 ignores a sample/timestep).
    """
    sw = check_array(sample_weight, "sample_weight")
    n = X.shape[0]
    if sw.ndim == 0 or len(sw) != n:
        raise LengthMismatchError(
            f"X has {n} samples but sample_weight has {0 if sw.ndim == 0 else len(sw)} entries "
            f"(sample_weight {sw.shape}).", "give one weight per sample (or per sample and timestep).")
    if sw.ndim > 2 or (sw.ndim == 2 and X.ndim == 3 and sw.shape[1] != X.shape[1]):
        raise ShapeError(f"sample_weight has shape {sw.shape}; expected ({n},) or ({n}, {X.shape[1]}).",
                         "use one weight per sample, or per sample and timestep for sequence outputs.")
    if (~np.isfinite(sw.astype(float)) | (sw < 0)).any():
        raise DataValueError("sample_weight has negative, NaN or inf entries.",
                             "weights must be finite and >= 0 (0 ignores a sample/timestep).")
    return sw


def check_batch_size(batch_size: Any) -> int | None:
    """A positive integer (or None: not given).

    Examples
    --------
    >>> check_batch_size(np.int64(16))
    16
    >>> check_batch_size(0)
    Traceback (most recent call last):
        ...
    statebatch.errors.ParameterError: batch_size must be a positive integer, got 0.
      Fix: pass batch_size=32 or another positive integer.
    """
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}.",
                             "pass batch_size=32 or another positive integer.")
    return int(batch_size)


def check_model_batch(batch_size: int | None, model_batch: int | None, X: np.ndarray,
                      model_shape: tuple | None) -> tuple[int | None, list[str]]:
    """The batch size to use, given the model's fixed one; a mismatch is refused.

    Examples
    --------
    >>> check_model_batch(None, 8, np.zeros((16, 5, 2)), (8, 5, 2))
    (8, ['the model has a fixed batch size 8: pass batch_size=8 to fit/predict (their default is 32).'])
    >>> check_model_batch(4, 8, np.zeros((16, 5, 2)), (8, 5, 2))
    Traceback (most recent call last):
        ...
    statebatch.errors.BatchSizeError: batch_size=4 but the model was built with a fixed batch size of 8 ...
    """
    if model_batch is None:
        return batch_size, []
    if batch_size is None:
        return model_batch, [f"the model has a fixed batch size {model_batch}: pass batch_size={model_batch} to "
                             "fit/predict (their default is 32)."]
    if batch_size != model_batch:
        raise BatchSizeError(
            f"batch_size={batch_size} but the model was built with a fixed batch size of {model_batch} "
            f"(input shape {model_shape}).",
            f"pass batch_size={model_batch}, or rebuild the model with keras.Input(batch_shape=({batch_size}, "
            f"{X.shape[1] if X.ndim > 1 else '...'}, {X.shape[-1]})).")
    return batch_size, []


def check_replicas(batch_size: int | None, num_replicas: int | None) -> None:
    """The global batch splits evenly over the replicas of a distribution strategy.

    Examples
    --------
    >>> check_replicas(8, 2)          # fine: returns None
    >>> check_replicas(6, 4)
    Traceback (most recent call last):
        ...
    statebatch.errors.BatchSizeError: batch_size=6 does not split evenly over 4 replicas.
      Fix: use a batch size divisible by 4; each replica then keeps 1 consecutive lanes (rows stay in place).
    """
    if num_replicas is not None:
        num_replicas = check_int("num_replicas", num_replicas, 1)
    if num_replicas is None or batch_size is None or batch_size % num_replicas == 0:
        return
    raise BatchSizeError(
        f"batch_size={batch_size} does not split evenly over {num_replicas} replicas.",
        f"use a batch size divisible by {num_replicas}; each replica then keeps {batch_size // num_replicas} "
        "consecutive lanes (rows stay in place).")


def check_stateful_flag(stateful: bool | None, stateful_layers: list) -> bool:
    """The ``stateful`` given agrees with the model's layers; returns the effective value.

    Examples
    --------
    >>> check_stateful_flag(None, [])
    False
    >>> check_stateful_flag(True, [])
    Traceback (most recent call last):
        ...
    statebatch.errors.StatefulLayoutError: stateful=True was given but the model has no stateful recurrent layer.
      Fix: build the RNN layers with stateful=True, or validate with stateful=False.
    """
    if stateful is None:
        return bool(stateful_layers)
    if stateful and not stateful_layers:
        raise StatefulLayoutError("stateful=True was given but the model has no stateful recurrent layer.",
                                  "build the RNN layers with stateful=True, or validate with stateful=False.")
    if not stateful and stateful_layers:
        raise StatefulLayoutError(
            f"stateful=False was given but the model has stateful layers {[layer.name for layer in stateful_layers]}.",
            "validate with stateful=True (or leave stateful unset to take it from the model).")
    return bool(stateful)


def check_stateful_batch(n: int, batch_size: int | None, model_fixed: bool | None = None) -> None:
    """A stateful model needs a fixed batch size that divides the sample count.

    Examples
    --------
    >>> check_stateful_batch(64, 8)   # fine: returns None
    >>> check_stateful_batch(10, 4)
    Traceback (most recent call last):
        ...
    statebatch.errors.BatchSizeError: 10 samples do not divide into batches of 4: the last batch would hold 2...
    """
    if batch_size is None:
        raise BatchSizeError("a stateful model needs a fixed batch size, and none was given.",
                             "pass batch_size=B here and build the model with keras.Input(batch_shape=(B, T, F)).")
    if model_fixed is False:
        raise BatchSizeError("the stateful model has no fixed batch size.", "build it with keras.Input(batch_shape=(B, T, F)).")
    if n % batch_size:
        k = n // batch_size
        # predicting a few rows (one row in particular) on a stateful model is the common case of this error:
        # Keras' own message ("Expected batch size: B") does not say that inference_model is the way out
        raise BatchSizeError(
            f"{plural(n, 'sample')} do not divide into batches of {batch_size}: "
            + (f"the last batch would hold {n % batch_size}. Keras 3 fails only at the end of the epoch with "
               f"'Incompatible shapes: [{n % batch_size},...] vs. [{batch_size},...]'." if k else
               f"a stateful model built for batch size {batch_size} cannot run {plural(n, 'row')} (Keras: "
               f"'Expected batch size: {batch_size}')."),
            f"to predict {plural(n, 'row')} (or any batch size) use statebatch.inference_model(model, {n}) (the same "
            f"weights at batch size {n}) or statebatch.inference_model(model) (a free batch axis); to train, arrange "
            f"the series with statebatch.arrange_stateful(series, timesteps, batch_size={batch_size}) (pads the "
            "remainder with weight 0)" + (f", or keep X[:{k * batch_size}]." if k else "."))


def check_shuffle(shuffle: Any, stateful: bool, model_given: bool = True) -> list[str]:
    """Shuffling scrambles which sample continues which in a stateful model.

    ``shuffle=None`` (not said) is a warning only when a model is given (``model_given``): the
    advice is about the ``fit`` call of that model, not about data checked on its own.

    Examples
    --------
    >>> check_shuffle(None, stateful=True)
    ['model.fit shuffles by default: pass shuffle=False for a stateful model.']
    >>> check_shuffle(True, stateful=True)
    Traceback (most recent call last):
        ...
    statebatch.errors.ShuffleError: shuffle=True with a stateful model scrambles which sample continues which ...
    """
    if shuffle is not None and not isinstance(shuffle, (bool, np.bool_)) and shuffle != "batch":
        raise ParameterError(f"shuffle={shuffle!r} is not what model.fit takes.",
                             "pass shuffle=True, False or 'batch' (the value you will give fit), or leave it out.")
    if not stateful:
        return []
    if shuffle is True or shuffle == "batch":
        raise ShuffleError(
            f"shuffle={shuffle!r} with a stateful model scrambles which sample continues which (row i of batch k+1 "
            "must continue row i of batch k).", "pass shuffle=False to model.fit (its default is True).")
    if shuffle is None and model_given:
        return ["model.fit shuffles by default: pass shuffle=False for a stateful model."]
    return []


def check_layout(X: np.ndarray, batch_size: int, timesteps: int | None = None, features: int | None = None,
                 verdict: "layout.LayoutVerdict | None" = None) -> list[str]:
    """Stateful data must be arranged in lanes: row i of batch k+1 continues row i of batch k.

    Reads the layout from the data (:func:`statebatch.layout.detect_layout`). Only *exact* evidence
    is refused with an error, each with its evidence and fix: rows that share bit-equal steps
    (sliding windows, ``OverlappingWindowsError``), statebatch's own record of how it made X
    (natural-order chunks, ``StatefulLayoutError``; reordered or permuted lanes, ``ShuffleError``)
    and channels-first data when ``timesteps``/``features`` (or a model) disagree with X's axes
    (``ShapeError``). A mistake read from the values alone (continuity at row boundaries) is
    statistical: it is returned as a warning that says how sure the reading is and what was
    measured, never raised, since real data can mimic it (recordings that all start and end at
    rest). Channels-first data without ``timesteps``/``features`` is a "likely transposed"
    warning. Lanes, independent samples and undetermined layouts pass without a warning.

    Examples
    --------
    >>> series = np.cumsum(np.random.default_rng(0).normal(size=(4096, 2)), axis=0)
    >>> lanes = series.reshape(4, 128, 8, 2).transpose(1, 0, 2, 3).reshape(512, 8, 2)
    >>> check_layout(lanes, batch_size=4)           # row i of batch k+1 continues row i of batch k
    []
    >>> windows = np.lib.stride_tricks.sliding_window_view(series, 8, axis=0).transpose(0, 2, 1)
    >>> check_layout(windows[:512], batch_size=4)
    Traceback (most recent call last):
        ...
    statebatch.errors.OverlappingWindowsError: X is overlapping sliding windows, not lanes, for a stateful model...
    """
    if X.ndim != 3:
        return []
    v = verdict if verdict is not None else layout.detect_layout(X, batch_size, timesteps=timesteps,
                                                                   features=features)
    sampled = f" ({v.rows_checked} of {v.n_rows} rows sampled)" if v.sampled else ""
    if v.kind == layout.CHANNELS_FIRST:
        if timesteps is not None or features is not None:
            raise ShapeError(f"X {X.shape} looks channels-first (samples, features, timesteps): {v.evidence}",
                             v.fix)
        return [f"X {X.shape} is likely transposed (channels-first): {v.evidence} Fix: {v.fix}"]
    if v.kind == layout.LANES and v.exact and v.fix:  # statebatch's lanes with resets: right layout, but
        return [f"X is lanes statebatch made, with resets a plain model.fit would not do: {v.evidence} "
                f"Fix: {v.fix}"]  # a plain fit carries one series' state into the next
    if v.kind not in (layout.SLIDING, layout.NATURAL, layout.SHUFFLED):
        return []
    if v.kind == layout.SLIDING:
        cls = OverlappingWindowsError if v.stride is None or v.stride < X.shape[1] else StatefulLayoutError
        what = "overlapping sliding windows" if cls is OverlappingWindowsError else "sliding windows with gaps"
    elif v.kind == layout.NATURAL:
        cls, what = StatefulLayoutError, "consecutive chunks in natural order"
    else:
        cls, what = ShuffleError, "lanes whose rows were shuffled"
    if v.exact:
        raise cls(f"X is {what}, not lanes, for a stateful model{sampled}: {v.evidence}", v.fix)
    return [f"X may be {what}, not lanes, for a stateful model: a statistical reading of the values "
            f"(confidence {v.confidence:.2f}{sampled}; not proof: unrelated samples can look alike at their "
            f"ends), measured: {v.evidence} If it is so: {v.fix}"]


def check_masking(X: np.ndarray, model: Any) -> list[str]:
    """cuDNN (TF on GPU) accepts only right-padded masks without fully masked rows.

    Examples
    --------
    >>> check_masking(np.zeros((2, 5, 1)), model=None)    # no model, nothing to check
    []
    """
    if model is None or X.ndim != 3:
        return []
    for layer in _introspect.iter_layers(model):
        if type(layer).__name__ == "Masking":
            masked = np.all(X == getattr(layer, "mask_value", 0.0), axis=-1)  # (n, T)
            full = int(masked.all(axis=1).sum())
            left = int((masked[:, :-1] & ~masked[:, 1:]).any(axis=1).sum())
            if full or left:
                return [f"the model masks steps equal to {layer.mask_value}: {full} sample(s) are fully masked (e.g. "
                        f"idle stateful lanes) and {left} have masked steps before real ones. On GPU, cuDNN rejects "
                        "both. Weight padding out instead (statebatch's default: per-timestep sample weights) or pad "
                        "at the end (padding='post') and drop empty rows."]
            return []
    return []


def check_suspicious(X: np.ndarray, stateful: bool, batch_size: int | None) -> list[str]:
    """Legal but suspicious: one timestep, float64, unscaled values, fewer samples than a batch.

    Examples
    --------
    >>> check_suspicious(np.zeros((4, 10, 2), dtype="float32"), stateful=False, batch_size=2)
    []
    >>> for w in check_suspicious(np.zeros((4, 1, 2), dtype="float32"), stateful=False, batch_size=8):
    ...     print(w)
    X has a single timestep: the recurrent layer sees no sequence. If each sample should be a sequence, window the series with statebatch.make_windows(series, timesteps).
    only 4 samples for batch_size=8: one small batch per epoch.
    """
    out = []
    if X.ndim == 3 and X.shape[1] == 1:
        out.append("X has a single timestep: the recurrent layer sees no sequence. If each sample should be a "
                   "sequence, window the series with statebatch.make_windows(series, timesteps).")
    if X.dtype == np.float64:
        out.append("X is float64; Keras computes in float32 and converts each batch. Pass X.astype('float32') to "
                   "halve memory and conversion time.")
    if np.issubdtype(X.dtype, np.floating) and X.size and np.isfinite(X).all():
        scale = float(np.abs(X).max())
        if scale > 1e3:
            out.append(f"X reaches magnitude {scale:.3g}; unscaled inputs saturate LSTM gates. Standardise features "
                       "(e.g. sklearn StandardScaler fitted on the training part).")
    if not stateful and batch_size is not None and X.shape[0] < batch_size:
        out.append(f"only {X.shape[0]} samples for batch_size={batch_size}: one small batch per epoch.")
    return out
