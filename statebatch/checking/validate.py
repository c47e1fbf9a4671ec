"""``validate``: catch shape and layout mistakes *before* training, by composing the named checks of
:mod:`statebatch.checks`.

It returns a :class:`ValidationReport`; by default it raises the first error, a subclass of
:class:`~statebatch.errors.StatebatchError` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import _introspect
from . import checks, layout
from ..errors import ParameterError, StatebatchError, StatebatchWarning
from ..results.batched import Batched
from ..sources.base import ConcatSource


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
        The facts checked: ``n_samples``, ``timesteps``, ``features``, ``batch_size``, ``stateful``,
        ``layout`` (stateful only: the detected layout kind)...
    layout : LayoutVerdict or None
        The full layout verdict (evidence, fix, lane order) for stateful data.
    """

    errors: list[StatebatchError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    layout: "layout.LayoutVerdict | None" = None

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


class _Runner:
    """Runs checks, collecting raised errors and returned warnings into a report."""

    def __init__(self, report: ValidationReport):
        self.report = report

    def __call__(self, check: Callable, *args, **kwargs) -> Any:
        try:
            out = check(*args, **kwargs)
        except StatebatchError as exc:
            self.report.errors.append(exc)
            return None
        if isinstance(out, list) and all(isinstance(w, str) for w in out):
            self.report.warnings.extend(out)
        return out


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
    X : array ``(samples, timesteps, features)``, or a statebatch result (:class:`~statebatch.Windows`,
        :class:`~statebatch.Arranged`): its X, y and weights are used.
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

    Examples
    --------
    >>> import numpy as np
    >>> series = np.cumsum(np.random.default_rng(0).normal(size=(4096, 2)), axis=0).astype("float32")
    >>> lanes = series.reshape(4, 128, 8, 2).transpose(1, 0, 2, 3).reshape(512, 8, 2)
    >>> rep = validate(lanes, batch_size=4, stateful=True, shuffle=False)
    >>> rep.ok, rep.info["layout"]
    (True, 'lanes')
    >>> validate(lanes, batch_size=4, stateful=True, shuffle=True)
    Traceback (most recent call last):
        ...
    statebatch.errors.ShuffleError: shuffle=True with a stateful model scrambles which sample continues which ...
    """
    rep = ValidationReport()
    run = _Runner(rep)

    if isinstance(X, Batched):
        X, y, sample_weight, batch_size, stateful = _from_result(X, y, sample_weight, batch_size, stateful, rep)

    Xa = run(checks.check_array, X, "X")
    if Xa is None:
        return _finish(rep, raise_errors, emit_warnings)
    m = _model_facts(model, stateful, run)
    if not _check_data(run, Xa, y, sample_weight, m, timesteps, features):
        return _finish(rep, raise_errors, emit_warnings)
    n_err = len(rep.errors)
    bs = run(checks.check_batch_size, batch_size)
    if len(rep.errors) > n_err:
        return _finish(rep, raise_errors, emit_warnings)
    res = run(checks.check_model_batch, bs, m.batch, Xa, m.shape)
    if res is not None:
        bs, notes = res
        rep.warnings.extend(notes)
    rep.info.update(batch_size=bs, stateful=m.stateful)
    run(checks.check_replicas, bs, num_replicas)
    _check_layout(run, Xa, bs, m, timesteps, features, model is not None)
    run(checks.check_shuffle, shuffle, m.stateful, model is not None)
    run(checks.check_masking, Xa, model)
    rep.warnings.extend(_introspect.backend_warnings(m.stateful_layers))
    rep.warnings.extend(checks.check_suspicious(Xa, m.stateful, bs))
    return _finish(rep, raise_errors, emit_warnings)


@dataclass(frozen=True)
class _ModelFacts:
    """What :func:`validate` reads from the model (all None / empty without one): its input and
    output shapes, stateful layers and fixed batch size; and whether the data is checked as
    stateful."""

    shape: tuple | None
    out: tuple | None
    stateful_layers: list
    batch: int | None
    stateful: bool

    @property
    def rank(self) -> int:
        return len(self.shape) if self.shape else 3


def _model_facts(model: Any, stateful: bool | None, run: _Runner) -> _ModelFacts:
    """The model's facts, and the effective ``stateful`` (the model's, when one is given and the
    flag agrees with it)."""
    if model is None:
        return _ModelFacts(None, None, [], None, bool(stateful))
    if not (hasattr(model, "layers") or hasattr(model, "get_config")):
        raise ParameterError(f"model must be a Keras model (or layer), got {type(model).__name__}.",
                             "pass the keras.Model you will train, or leave model out.")
    shape, out = _introspect.input_shape(model), _introspect.output_shape(model)
    m_stateful = _introspect.stateful_layers(model)
    batch = _introspect.fixed_batch_size(model)
    flag = run(checks.check_stateful_flag, stateful, m_stateful)
    return _ModelFacts(shape, out, m_stateful, batch, bool(m_stateful) if flag is None else bool(flag))


def _check_data(run: _Runner, Xa: np.ndarray, y: Any, sample_weight: Any, m: _ModelFacts,
                timesteps: int | None, features: int | None) -> bool:
    """Rank, emptiness, values, sizes against the model, targets and weights; False when the
    rest cannot be checked (wrong rank, empty X)."""
    rep, rank, m_shape = run.report, m.rank, m.shape
    n_err = len(rep.errors)
    run(checks.check_rank, Xa, rank, m_shape)
    if len(rep.errors) > n_err:
        return False
    rep.info.update(n_samples=Xa.shape[0])
    if rank == 3:
        rep.info.update(timesteps=Xa.shape[1], features=Xa.shape[2])
    run(checks.check_not_empty, Xa)
    if rep.errors:
        return False
    run(checks.check_finite, Xa, "X")
    run(checks.check_timesteps, Xa, m_shape[1] if m_shape and rank == 3 else timesteps, m_shape)
    run(checks.check_features, Xa, m_shape[-1] if m_shape else features, m_shape)
    if y is not None:
        run(checks.check_targets, Xa, y, m.out)
    if sample_weight is not None:
        run(checks.check_sample_weight, Xa, sample_weight)
    return True


def _check_layout(run: _Runner, Xa: np.ndarray, bs: int | None, m: _ModelFacts, timesteps: int | None,
                  features: int | None, model_given: bool) -> None:
    """Stateful: batches that divide the samples, and the layout read from the data. Stateless:
    only a transposed X matters (a short time axis with many features is its sign)."""
    rep, rank, m_shape = run.report, m.rank, m.shape
    expected_t = m_shape[1] if m_shape and rank == 3 else timesteps
    expected_f = m_shape[-1] if m_shape else features
    if m.stateful:
        fixed = None if not model_given or not m.stateful_layers else m.batch is not None
        run(checks.check_stateful_batch, Xa.shape[0], bs, fixed)
        if bs is not None and rank == 3 and Xa.shape[0] > 0:
            verdict = _detect(Xa, bs, expected_t, expected_f)
            if verdict is not None:
                rep.info["layout"] = verdict.kind + (" (sampled)" if verdict.sampled else "")
                rep.info["layout_evidence"] = "exact" if verdict.exact else "statistical"
                rep.layout = verdict
                run(checks.check_layout, Xa, bs, expected_t, expected_f, verdict=verdict)
    elif rank == 3 and 1 <= Xa.shape[1] < Xa.shape[2] and Xa.shape[0] > 0:
        verdict = _detect(Xa, bs or 1, m_shape[1] if m_shape else timesteps, expected_f)
        if verdict is not None and verdict.kind == layout.CHANNELS_FIRST:
            rep.layout = verdict
            run(checks.check_layout, Xa, bs or 1, m_shape[1] if m_shape else timesteps, expected_f, verdict=verdict)


def _detect(Xa: np.ndarray, bs: int, t: int | None, f: int | None) -> "layout.LayoutVerdict | None":
    """The layout verdict, or None when X's shape disagrees with ``t``/``f`` either way round (already
    reported by check_timesteps / check_features)."""
    try:
        return layout.detect_layout(Xa, bs, timesteps=t, features=f)
    except StatebatchError:
        return None


def _from_result(result: Any, y: Any, sample_weight: Any, batch_size: int | None, stateful: bool | None,
                 rep: ValidationReport) -> tuple[Any, Any, Any, int | None, bool | None]:
    """X, y and weights of a statebatch result (a :class:`Batched`: Windows, Arranged or Bucketing,
    each with ``arrays()``; out of core: its first batch only)."""
    is_lanes = hasattr(result, "resets")
    source = getattr(getattr(result, "_ss", None), "source", None)
    in_memory = source is not None and (source.array is not None or isinstance(source, ConcatSource))
    if is_lanes and not in_memory:  # reading everything to validate it would defeat the purpose
        first = result.batch(0)
        X = first[0]
        y = (first[1] if len(first) > 1 else None) if y is None else y
        sample_weight = (first[2] if len(first) > 2 else None) if sample_weight is None else sample_weight
        rep.warnings.append("out-of-core arrangement: checked its first batch (values were checked while preparing "
                            "the store).")
    else:
        arrays = result.arrays()
        X = arrays[0]
        y = (arrays[1] if len(arrays) > 1 else None) if y is None else y
        if is_lanes and sample_weight is None and len(arrays) > 2:
            sample_weight = arrays[2]
    if is_lanes:
        batch_size = result.batch_size if batch_size is None else batch_size
        stateful = True if stateful is None else stateful
    return X, y, sample_weight, batch_size, stateful


def _finish(rep: ValidationReport, raise_errors: bool, emit_warnings: bool) -> ValidationReport:
    if emit_warnings:
        for w in rep.warnings:
            warnings.warn(w, StatebatchWarning, stacklevel=3)
    if raise_errors:
        rep.raise_if_errors()
    return rep

