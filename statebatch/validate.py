"""Validators: catch shape and layout mistakes *before* training.

``validate`` checks X (and y, sample weights, the batch size, statefulness, shuffling and a Keras
model) and returns a :class:`ValidationReport`; by default it raises the first error, a subclass of
:class:`~statebatch.errors.StatebatchError` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _introspect
from ._series import dtype_error
from .errors import (BatchSizeError, DataValueError, DTypeError, LengthMismatchError, ModelMismatchError,
                     OverlappingWindowsError, ParameterError, ShapeError, ShuffleError, StatebatchError,
                     StatebatchWarning, StatefulLayoutError)


@dataclass
class ValidationReport:
    """What :func:`validate` found.

    Attributes
    ----------
    errors : list of StatebatchError
        Problems that would break training or make it silently wrong.
    warnings : list of str
        Legal but suspicious things.
    info : dict
        The facts checked: ``n_samples``, ``timesteps``, ``features``, ``batch_size``, ``stateful``...
    """

    errors: list[StatebatchError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_if_errors(self) -> "ValidationReport":
        if self.errors:
            first = self.errors[0]
            if len(self.errors) > 1:
                more = "; ".join(type(e).__name__ + ": " + e.problem for e in self.errors[1:])
                first.args = (first.args[0] + f"\n  ({len(self.errors) - 1} more problem(s): {more})",)
            first.report = self  # type: ignore[attr-defined]
            raise first
        return self

    def __str__(self) -> str:
        lines = ["statebatch validation: " + ("OK" if self.ok else f"{len(self.errors)} error(s)")]
        facts = ", ".join(f"{k}={v}" for k, v in self.info.items())
        if facts:
            lines.append("  " + facts)
        lines += [f"  ERROR {type(e).__name__}: {e}" for e in self.errors]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _as_array(obj: Any, name: str) -> np.ndarray:
    if hasattr(obj, "to_numpy") and type(obj).__module__.startswith("pandas"):
        if type(obj).__name__ == "DataFrame" and name == "X":
            raise ShapeError(
                f"X is a pandas DataFrame of shape {obj.shape}: a 2-D table (steps, features), not "
                "[samples, timesteps, features].",
                "cut it into windows first: statebatch.make_windows(df, timesteps=...).",
            )
        obj = obj.to_numpy()
    if isinstance(obj, np.ndarray):
        return obj
    if hasattr(obj, "numpy") and hasattr(obj, "shape") and hasattr(obj, "dtype"):  # tf / torch tensors
        return np.asarray(obj)
    try:
        return np.asarray(obj)
    except (ValueError, TypeError):
        lens = sorted({len(r) for r in obj if hasattr(r, "__len__")})[:5] if hasattr(obj, "__iter__") else []
        raise DTypeError(
            f"{name} is ragged: its rows have different lengths {lens} and cannot form one array.",
            "pad them to one length (statebatch bucketing, or keras.utils.pad_sequences(..., "
            "dtype='float32')) or window each series with statebatch.make_windows(list_of_series, ...).",
        ) from None


def _finite_error(arr: np.ndarray, name: str) -> DataValueError | None:
    if not np.issubdtype(arr.dtype, np.floating):
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(bad.sum()) - n_nan
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    return DataValueError(
        f"{name} holds {n_nan} NaN and {n_inf} inf value(s) (first at index {where}); the loss "
        "becomes NaN at the first batch that contains one.",
        "fill or interpolate missing values in the raw series before windowing (e.g. "
        "pd.Series.interpolate(), or mask them with a pad value and a Masking layer), or drop those "
        "samples: keep = np.isfinite(X).all(axis=(1, 2)).",
    )


def _overlap_shift(a: np.ndarray, b: np.ndarray) -> int | None:
    """The shift s (0 < s < T) with ``b[:T-s] == a[s:]``, i.e. b is a shifted copy of a."""
    t = len(a)
    cand = np.flatnonzero((a == b[0]).reshape(t, -1).all(axis=1))
    for s in cand:
        if 0 < s < t and np.array_equal(b[: t - s], a[s:]):
            return int(s)
    return None


def find_overlap(X: np.ndarray, batch_size: int, max_pairs: int = 64, seed: int = 0) -> dict | None:
    """Detect sliding windows laid out for a stateful model.

    In a stateful model row ``i`` of batch ``k+1`` must *continue* row ``i`` of batch ``k``. With
    overlapping sliding windows it is instead a shifted copy of it. Returns the evidence
    (``shift``, ``pairs_checked``, ``pairs_overlapping``, an example) or ``None``.
    """
    n = X.shape[0]
    n_batches = n // batch_size
    if n_batches < 2 or X.ndim != 3 or X.shape[1] < 2:
        return None
    rng = np.random.default_rng(seed)
    ks = rng.integers(0, n_batches - 1, size=max_pairs)
    ii = rng.integers(0, batch_size, size=max_pairs)
    checked = hits = 0
    shifts: list[int] = []
    example = None
    for k, i in zip(ks, ii):
        a, b = X[k * batch_size + i], X[(k + 1) * batch_size + i]
        if np.all(a == a[0]):  # a constant window proves nothing
            continue
        checked += 1
        s = _overlap_shift(a, b)
        if s is not None:
            hits += 1
            shifts.append(s)
            if example is None:
                example = (int(k), int(i), s)
    if checked and hits / checked >= 0.5:
        return {"shift": int(np.bincount(shifts).argmax()), "pairs_checked": checked,
                "pairs_overlapping": hits, "example": example}
    return None


def validate(
    X: Any,
    y: Any = None,
    *,
    sample_weight: Any = None,
    batch_size: int | None = None,
    stateful: bool | None = None,
    shuffle: bool | str | None = None,
    model: Any = None,
    timesteps: int | None = None,
    features: int | None = None,
    num_replicas: int | None = None,
    raise_errors: bool = True,
    emit_warnings: bool = True,
) -> ValidationReport:
    """Check data for a recurrent model before training.

    Parameters
    ----------
    X : array ``(samples, timesteps, features)``, or a :class:`~statebatch.Windows` /
        :class:`~statebatch.Arranged` (its X, y and weights are used).
    y, sample_weight : arrays with one entry per sample, optional
    batch_size : int, optional
        The ``batch_size`` you will pass to ``fit``. Taken from the model when it has a fixed one.
    stateful : bool, optional
        Whether the model is stateful; taken from ``model`` when given.
    shuffle : bool or "batch", optional
        The ``shuffle`` you will pass to ``fit`` (Keras' default is ``True``).
    model : keras.Model, optional
        Checks timesteps, features, fixed batch size and output rank against it.
    timesteps, features : int, optional
        Expected sizes, when no model is given.
    num_replicas : int, optional
        Replicas of a distribution strategy; the global batch is split among them.
    raise_errors : bool
        Raise the first error (default) instead of only reporting it.
    emit_warnings : bool
        Also emit the report's warnings as :class:`~statebatch.errors.StatebatchWarning`.

    Returns
    -------
    ValidationReport
    """
    rep = ValidationReport()
    err, warn = rep.errors.append, rep.warnings.append

    if hasattr(X, "sample_weight") and hasattr(X, "resets"):  # an Arranged result
        arranged = X
        if isinstance(arranged._base, np.ndarray):
            X, y = arranged.X, arranged.y if y is None else y
            sample_weight = arranged.sample_weight if sample_weight is None else sample_weight
        else:  # out of core: reading everything to validate it would defeat the purpose
            first = arranged.batch(0)
            X = first[0]
            y = (first[1] if len(first) > 1 else None) if y is None else y
            sample_weight = (first[2] if len(first) > 2 else None) if sample_weight is None else sample_weight
            rep.warnings.append("out-of-core arrangement: checked its first batch (values were checked while "
                                "preparing the store).")
        batch_size = arranged.batch_size if batch_size is None else batch_size
        stateful = True if stateful is None else stateful
    elif hasattr(X, "take") and hasattr(X, "series_ids"):  # Windows
        X, y = X.X, (X.y if y is None else y)

    Xa = _as_array(X, "X")
    problem = dtype_error(Xa, "X")
    if problem:
        err(problem)
        return _finish(rep, raise_errors, emit_warnings)

    # Model facts.
    m_shape = m_out = m_batch = None
    m_stateful: list[Any] = []
    if model is not None:
        m_shape = _introspect.input_shape(model)
        m_out = _introspect.output_shape(model)
        m_stateful = _introspect.stateful_layers(model)
        m_batch = _introspect.fixed_batch_size(model)
        if stateful is None:
            stateful = bool(m_stateful)
        elif stateful and not m_stateful:
            err(StatefulLayoutError(
                "stateful=True was given but the model has no stateful recurrent layer.",
                "build the RNN layers with stateful=True, or validate with stateful=False."))
        elif not stateful and m_stateful:
            err(StatefulLayoutError(
                f"stateful=False was given but the model has stateful layers "
                f"{[layer.name for layer in m_stateful]}.",
                "validate with stateful=True (or leave stateful unset to take it from the model)."))
    stateful = bool(stateful)
    rank_wanted = len(m_shape) if m_shape else 3

    # Rank.
    if Xa.ndim != rank_wanted:
        err(_rank_error(Xa, rank_wanted, m_shape))
        return _finish(rep, raise_errors, emit_warnings)
    n = Xa.shape[0]
    rep.info.update(n_samples=n)
    if rank_wanted == 3:
        rep.info.update(timesteps=Xa.shape[1], features=Xa.shape[2])
    if n == 0 or 0 in Xa.shape[1:]:
        err(DataValueError(f"X is empty: shape {Xa.shape}.", "pass at least one sample with at least "
                                                             "one time step and one feature."))
        return _finish(rep, raise_errors, emit_warnings)
    problem = _finite_error(Xa, "X")
    if problem:
        err(problem)

    # Sizes against the model or the expected sizes.
    want_t = m_shape[1] if m_shape else timesteps
    want_f = m_shape[-1] if m_shape else features
    if rank_wanted == 3 and want_t is not None and Xa.shape[1] != want_t:
        err(ModelMismatchError(
            f"X has {Xa.shape[1]} timesteps (shape {Xa.shape}) but the model expects {want_t} "
            f"(input shape {m_shape or (None, want_t, want_f)}). Keras 3 may accept this without any error.",
            f"window the series with timesteps={want_t} (statebatch.make_windows(series, {want_t})), or "
            f"build the model with keras.Input(shape=(None, {Xa.shape[2]})) to accept any length."))
    if want_f is not None and Xa.shape[-1] != want_f:
        err(ModelMismatchError(
            f"X has {Xa.shape[-1]} features (shape {Xa.shape}) but the model expects {want_f} "
            f"(input shape {m_shape or (None, want_t, want_f)}).",
            "give X the model's feature columns (X[..., cols]), or build the model with "
            f"keras.Input(shape=({Xa.shape[1]}, {Xa.shape[-1]}))."))

    # y and sample weights.
    ya = None
    if y is not None:
        ya = _as_array(y, "y")
        problem = dtype_error(ya, "y")
        if problem:
            err(problem)
            ya = None
    if ya is not None:
        if ya.ndim == 0 or len(ya) != n:
            err(LengthMismatchError(
                f"X has {n} samples but y has {0 if ya.ndim == 0 else len(ya)} (X {Xa.shape}, y {ya.shape}).",
                "give exactly one target per sample; make_windows(..., targets=...) builds aligned X and y."))
        else:
            problem = _finite_error(ya, "y")
            if problem:
                err(problem)
        if m_out is not None and ya.ndim >= 1:
            out_rank = len(m_out)
            if ya.ndim > out_rank:
                err(ModelMismatchError(
                    f"y has shape {ya.shape} (one target per timestep) but the model outputs {m_out}.",
                    "set return_sequences=True on the last recurrent layer (and wrap the head in "
                    "TimeDistributed if needed), or use one target per sample."))
            elif (ya.ndim == out_rank and m_out[-1] is not None and ya.shape[-1] != m_out[-1]
                  and not (np.issubdtype(ya.dtype, np.integer) and ya.shape[-1] == 1)):
                err(ModelMismatchError(
                    f"y has {ya.shape[-1]} value(s) per target (shape {ya.shape}) but the model outputs "
                    f"{m_out[-1]} (output shape {m_out}).",
                    f"end the model with a layer of {ya.shape[-1]} unit(s) (e.g. Dense({ya.shape[-1]})), or "
                    "select the target columns you meant (target_features=... / target_cols=...)."))
            elif out_rank == 3 and ya.ndim == 2 and not np.issubdtype(ya.dtype, np.integer):
                err(ModelMismatchError(
                    f"the model returns sequences {m_out} but y has one target per sample {ya.shape}; "
                    "Keras would broadcast them against every timestep.",
                    "set return_sequences=False on the last recurrent layer, or give per-timestep "
                    "targets (make_windows(..., return_sequences=True))."))
    if sample_weight is not None:
        sw = _as_array(sample_weight, "sample_weight")
        if sw.ndim == 0 or len(sw) != n:
            err(LengthMismatchError(
                f"X has {n} samples but sample_weight has {0 if sw.ndim == 0 else len(sw)} entries "
                f"(sample_weight {sw.shape}).", "give one weight per sample (or per sample and timestep)."))
        elif sw.ndim > 2 or (sw.ndim == 2 and rank_wanted == 3 and sw.shape[1] != Xa.shape[1]):
            err(ShapeError(
                f"sample_weight has shape {sw.shape}; expected ({n},) or ({n}, {Xa.shape[1]}).",
                "use one weight per sample, or per sample and timestep for sequence outputs."))
        elif np.issubdtype(sw.dtype, np.number) and (~np.isfinite(sw.astype(float)) | (sw < 0)).any():
            err(DataValueError("sample_weight has negative, NaN or inf entries.",
                               "weights must be finite and >= 0 (0 ignores a sample/timestep)."))

    # Batch size.
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size < 1):
        err(ParameterError(f"batch_size must be a positive integer, got {batch_size!r}.",
                           "pass batch_size=32 or another positive integer."))
        return _finish(rep, raise_errors, emit_warnings)
    if m_batch is not None:
        if batch_size is None:
            batch_size = m_batch
            warn(f"the model has a fixed batch size {m_batch}: pass batch_size={m_batch} to fit/predict "
                 "(their default is 32).")
        elif batch_size != m_batch:
            err(BatchSizeError(
                f"batch_size={batch_size} but the model was built with a fixed batch size of {m_batch} "
                f"(input shape {m_shape}).",
                f"pass batch_size={m_batch}, or rebuild the model with keras.Input(batch_shape="
                f"({batch_size}, {Xa.shape[1] if Xa.ndim > 1 else '...'}, {Xa.shape[-1]}))."))
    rep.info.update(batch_size=batch_size, stateful=stateful)
    if num_replicas is not None and batch_size is not None and batch_size % num_replicas:
        err(BatchSizeError(
            f"batch_size={batch_size} does not split evenly over {num_replicas} replicas.",
            f"use a batch size divisible by {num_replicas}; each replica then keeps "
            f"{batch_size // num_replicas} consecutive lanes (rows stay in place)."))

    # Stateful layout.
    if stateful:
        if batch_size is None:
            err(BatchSizeError(
                "a stateful model needs a fixed batch size, and none was given.",
                "pass batch_size=B here and build the model with keras.Input(batch_shape=(B, T, F))."))
        else:
            if n % batch_size:
                k = n // batch_size
                err(BatchSizeError(
                    f"{n} samples do not divide into batches of {batch_size}: the last batch would hold "
                    f"{n % batch_size}. Keras 3 fails only at the end of the epoch with "
                    f"'Incompatible shapes: [{n % batch_size},...] vs. [{batch_size},...]'.",
                    f"arrange the series with statebatch.arrange_stateful(series, timesteps, batch_size="
                    f"{batch_size}) (pads the remainder with weight 0), or keep X[:{k * batch_size}]."))
            overlap = find_overlap(Xa, batch_size) if rank_wanted == 3 else None
            if overlap:
                k, i, s = overlap["example"]
                err(OverlappingWindowsError(
                    f"X looks like overlapping sliding windows: row {i} of batch {k + 1} is row {i} of "
                    f"batch {k} shifted by {s} step(s) ({overlap['pairs_overlapping']} of "
                    f"{overlap['pairs_checked']} sampled pairs). A stateful model carries the state of row "
                    "i into row i of the next batch, so it would see those steps twice, out of order.",
                    "use statebatch.arrange_stateful(series, timesteps, batch_size) to cut the series into "
                    "non-overlapping lanes, or use stateful=False with sliding windows."))
        if shuffle is True or shuffle == "batch":
            err(ShuffleError(
                f"shuffle={shuffle!r} with a stateful model scrambles which sample continues which "
                "(row i of batch k+1 must continue row i of batch k).",
                "pass shuffle=False to model.fit (its default is True)."))
        elif shuffle is None:
            warn("model.fit shuffles by default: pass shuffle=False for a stateful model.")
        if m_batch is None and model is not None and m_stateful:
            err(BatchSizeError("the stateful model has no fixed batch size.",
                               "build it with keras.Input(batch_shape=(B, T, F))."))

    # Masks: cuDNN (TF on GPU) accepts only right-padded masks without fully masked rows.
    if model is not None and rank_wanted == 3:
        for layer in _introspect.iter_layers(model):
            if type(layer).__name__ == "Masking":
                masked = np.all(Xa == getattr(layer, "mask_value", 0.0), axis=-1)  # (n, T)
                full = int(masked.all(axis=1).sum())
                left = int((masked[:, :-1] & ~masked[:, 1:]).any(axis=1).sum())
                if full or left:
                    warn(f"the model masks steps equal to {layer.mask_value}: {full} sample(s) are fully masked "
                         f"(e.g. idle stateful lanes) and {left} have masked steps before real ones. On GPU, cuDNN "
                         "rejects both. Weight padding out instead (statebatch's default: per-timestep sample "
                         "weights) or pad at the end (padding='post') and drop empty rows.")
                break

    # Suspicious but legal.
    if rank_wanted == 3 and Xa.shape[1] == 1:
        warn("X has a single timestep: the recurrent layer sees no sequence. If each sample should be a "
             "sequence, window the series with statebatch.make_windows(series, timesteps).")
    if Xa.dtype == np.float64:
        warn("X is float64; Keras computes in float32 and converts each batch. Pass X.astype('float32') "
             "to halve memory and conversion time.")
    if np.issubdtype(Xa.dtype, np.floating) and Xa.size and np.isfinite(Xa).all():
        scale = float(np.abs(Xa).max())
        if scale > 1e3:
            warn(f"X reaches magnitude {scale:.3g}; unscaled inputs saturate LSTM gates. Standardise "
                 "features (e.g. sklearn StandardScaler fitted on the training part).")
    if not stateful and batch_size is not None and n < batch_size:
        warn(f"only {n} samples for batch_size={batch_size}: one small batch per epoch.")
    return _finish(rep, raise_errors, emit_warnings)


def _rank_error(Xa: np.ndarray, want: int, m_shape: tuple | None) -> ShapeError:
    shape = Xa.shape
    if want != 3:
        return ShapeError(f"X has shape {shape} but the model's input is {m_shape} (rank {want}).",
                          "reshape X to the model's input rank.")
    if Xa.ndim == 1:
        return ShapeError(
            f"X is 1-D {shape}; a recurrent layer needs 3-D [samples, timesteps, features].",
            f"if X is one series of {shape[0]} steps, cut it into windows: statebatch.make_windows(X, "
            f"timesteps=T) (or arrange_stateful for a stateful model); if each value is its own sample, "
            f"X.reshape({shape[0]}, 1, 1).")
    if Xa.ndim == 2:
        return ShapeError(
            f"X is 2-D {shape}; a recurrent layer needs 3-D [samples, timesteps, features].",
            f"if each row is one sample of {shape[1]} timesteps of a single feature, use X[..., None] "
            f"(shape {shape + (1,)}); if X is one series of {shape[0]} steps x {shape[1]} features, cut it "
            "into windows with statebatch.make_windows(X, timesteps=T).")
    if Xa.ndim == 4:
        return ShapeError(
            f"X is 4-D {shape}; a recurrent layer needs 3-D [samples, timesteps, features].",
            f"flatten the per-step features: X.reshape({shape[0]}, {shape[1]}, {shape[2] * shape[3]}), "
            "or use ConvLSTM2D / TimeDistributed for image sequences.")
    return ShapeError(f"X has {Xa.ndim} dimensions {shape}; a recurrent layer needs 3-D "
                      "[samples, timesteps, features].", "reshape X to (samples, timesteps, features).")


def _finish(rep: ValidationReport, raise_errors: bool, emit_warnings: bool) -> ValidationReport:
    if emit_warnings:
        for w in rep.warnings:
            warnings.warn(w, StatebatchWarning, stacklevel=3)
    if raise_errors:
        rep.raise_if_errors()
    return rep
