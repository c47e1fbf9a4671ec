"""Losses over real steps: statebatch pads with sample weight 0, and Keras' default reduction divides by
every step, padding included (KERAS_FACTS.md, "Losses with padding").

:func:`use_real_step_loss` (lanes: batches of one length), :class:`RealStepLoss` and the epoch-mean step
weights of :func:`epoch_mean_weights` (buckets: batches of many lengths) make the losses Keras reports
means over the real steps; :func:`check_real_step_loss` says why a compiled loss would not be.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ...errors import ParameterError

__all__ = ["REAL_STEP_REDUCTION", "STEP_WEIGHTS", "use_real_step_loss", "epoch_steps_per_sequence",
           "epoch_mean_weights", "RealStepLoss", "check_real_step_loss"]

REAL_STEP_REDUCTION = "mean_with_sample_weight"


def use_real_step_loss(model: Any) -> int:
    """Make a compiled model's loss a mean over real (non-padded) steps; returns the losses changed.

    statebatch pads (idle lanes, series ends, buckets) with sample weight 0. Keras' default reduction
    (``"sum_over_batch_size"``) divides by every step, padding included, so a reported loss is the
    true mean times (1 - padding fraction) and the gradient shrinks with it. ``"mean_with_sample_weight"``
    divides each batch's loss by the sum of its weights: the mean over its real steps. (The epoch figure
    Keras prints is then the mean of these batch means; for the exact mean over all real steps of an
    epoch of lanes, whose batches share one length, add ``weighted_metrics=["mse"]`` (or your metric) to
    ``compile``: weighted metrics accumulate sums and weights. Bucketed sequences need
    :class:`RealStepLoss` instead, see :class:`BucketDataset`.) Same as compiling with
    ``loss=keras.losses.MeanSquaredError(reduction="mean_with_sample_weight")``, for a model compiled
    already; :func:`fit_stateful` calls it.

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> m.compile(loss="mse")
    >>> use_real_step_loss(m), use_real_step_loss(m)  # one loss changed, then none left to change
    (1, 0)
    """
    return _set_reduction(model, REAL_STEP_REDUCTION)


def _compiled_loss(model: Any) -> Any:
    """The model's compiled loss container, built (its per-output losses exist)."""
    compiled = getattr(model, "_compile_loss", None)
    if compiled is None:
        raise ParameterError("the model is not compiled with a loss.", "call model.compile(optimizer=..., loss=...) first.")
    if not compiled.built:
        outputs = model.outputs
        y = outputs[0] if len(outputs) == 1 else outputs
        compiled.build(y, y)
    return compiled


def _set_reduction(model: Any, reduction: str | list, retrace: bool = True) -> int:
    """Set every compiled loss of ``model`` to ``reduction`` (one, or one per loss as
    :func:`_reductions` returns them); returns how many changed. ``retrace=False`` keeps the traced
    train/test steps (a switch inside ``fit``, where Keras holds on to the functions it made)."""
    compiled = _compiled_loss(model)
    entries = list(compiled._flat_losses)
    wanted = reduction if isinstance(reduction, list) else [reduction] * len(entries)
    changed = 0
    for entry, r in zip(entries, wanted):
        loss = entry.loss
        if loss is not None and getattr(loss, "reduction", None) != r:
            loss.reduction = r
            changed += 1
    if changed and retrace:  # traced train/test steps captured the old reduction
        model.train_function = None
        model.test_function = None
    return changed


def _reductions(model: Any) -> list:
    """The reduction of every compiled loss of ``model``, in order."""
    return [getattr(e.loss, "reduction", None) for e in _compiled_loss(model)._flat_losses]


STEP_WEIGHTS = ("epoch_mean", "unit")


def epoch_steps_per_sequence(plan: Any) -> float:
    """Real steps per sequence over the sequences an epoch's :class:`~statebatch.plans.BucketPlan` serves.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> epoch_steps_per_sequence(SimpleNamespace(batches=[[0, 1], [2]], lengths=[4, 2, 3]))
    3.0
    """
    served = [np.asarray(b) for b in plan.batches]
    n = sum(len(b) for b in served)
    steps = sum(int(np.asarray(plan.lengths)[b].sum()) for b in served)
    return steps / n if n else 1.0


def epoch_mean_weights(unit: np.ndarray, steps_per_sequence: float) -> np.ndarray:
    """Per-step weights that make Keras' epoch figures means over all real steps of the epoch.

    Parameters
    ----------
    unit : ndarray ``(batch, T_k)``, 1 on real steps and 0 on padding
    steps_per_sequence : float, ``R / N`` (real steps and sequences in the epoch)

    Returns
    -------
    ndarray ``(batch, T_k)``: ``unit * T_k * N / R``, float32.

    Why this scale: Keras shows a loss as the mean of batch losses weighted by the batch's rows
    ``n_k``, and with the default reduction (no output mask) a batch loss is ``sum(w * loss) /
    (n_k * T_k)``: the epoch figure is ``sum_k sum(w * loss) / T_k / N``. A weighted metric keeps per
    sequence ``mean_t(w * value)`` and ``mean_t(w)``, so it is ``sum_k sum(w * value) / T_k`` over
    ``sum_k sum(w) / T_k``. Both are the mean over the real steps when ``w = T_k * N / R``; with 1/0
    weights every batch would count with ``1 / T_k`` (the batches of short sequences too much).

    Examples
    --------
    >>> import numpy as np
    >>> epoch_mean_weights(np.array([[1, 1, 0], [1, 1, 1]], "float32"), steps_per_sequence=2.5)
    array([[1.2, 1.2, 0. ],
           [1.2, 1.2, 1.2]], dtype=float32)
    """
    scale = unit.shape[1] / steps_per_sequence if unit.ndim >= 2 else 1.0
    return (unit * np.float32(scale)).astype(np.float32, copy=False)


@keras.saving.register_keras_serializable(package="statebatch")
class RealStepLoss(keras.losses.Loss):
    """A Keras loss whose epoch figure over a :class:`BucketDataset` is the exact mean over real steps.

    Wraps any per-step loss (``"mse"``, ``"sparse_categorical_crossentropy"``, a ``keras.losses.Loss``,
    a function). With sample weights, each batch's loss is ``sum(w * loss) / (batch * T_k)`` whether or
    not the model's output carries a Keras mask: the weights already zero the padding, and Keras'
    default reduction would instead divide a masked output by its unmasked steps (a per-batch mean,
    which Keras then averages per sequence, not per step). Together with the weights of
    :class:`BucketDataset` (``step_weights="epoch_mean"``) the loss ``fit``/``evaluate`` report is the mean
    over the epoch's real steps, and the training gradient gives every real step the same weight.
    Without sample weights it is Keras' default (the mean, masks respected).

    ``model.compile(optimizer, loss=statebatch.keras.RealStepLoss("mse"), weighted_metrics=["mse"])``
    """

    inner: Any  # a Loss (its unreduced .call) or a function returning per-step values

    def __init__(self, loss: Any = "mean_squared_error", name: str | None = None, dtype: Any = None):
        inner = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
        if isinstance(inner, RealStepLoss):
            inner = inner.inner
        if not callable(inner):
            raise ParameterError(f"RealStepLoss needs a Keras loss, got {loss!r}.",
                                 "pass a loss name such as 'mse', a keras.losses.Loss or a function (y_true, y_pred).")
        self.inner = inner  # a Loss (its unreduced .call) or a function returning per-step values
        inner_name = getattr(inner, "name", None) or getattr(inner, "__name__", "loss")
        super().__init__(name=name or f"real_step_{inner_name}", reduction="sum_over_batch_size", dtype=dtype)

    def call(self, y_true, y_pred):
        return self.inner.call(y_true, y_pred) if isinstance(self.inner, keras.losses.Loss) else self.inner(y_true, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is None:
            return super().__call__(y_true, y_pred)
        ops = keras.ops
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true, dtype=self.dtype)
        values = self.call(y_true, y_pred)  # per step; a Keras mask on y_pred is deliberately not applied
        w = ops.cast(ops.convert_to_tensor(sample_weight), values.dtype)
        if len(w.shape) == len(values.shape) + 1 and w.shape[-1] == 1:
            w = ops.squeeze(w, axis=-1)
        while len(w.shape) < len(values.shape):
            w = ops.expand_dims(w, axis=-1)
        count = ops.cast(ops.prod(ops.convert_to_tensor(ops.shape(values), dtype="int32")), values.dtype)
        return ops.divide_no_nan(ops.sum(values * w), count)

    def get_config(self):
        return {"name": self.name, "loss": keras.losses.serialize(self.inner), "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("reduction", None)
        return cls(loss=keras.losses.deserialize(config.pop("loss")), **config)


def check_real_step_loss(model: Any) -> list[str]:
    """Why the loss ``model`` reports over a :class:`BucketDataset` with per-step targets would not be
    the mean over real steps (an empty list when it is); weighted metrics are exact in every case.

    Exact: :class:`RealStepLoss`, or Keras' default reduction (``"sum_over_batch_size"``) on an output
    that carries no Keras mask. Not exact: ``"mean_with_sample_weight"`` (each batch's mean over its
    real steps, then the mean of those weighted by the batch's sequences), the default reduction on a
    masked output (``Masking``, ``mask_zero``: Keras divides by the unmasked steps, the same batch
    mean), ``"sum"`` and ``None``. Checks the compiled losses and, for the mask, the model's outputs.

    Examples
    --------
    >>> import keras
    >>> m = keras.Sequential([keras.Input((None, 1)), keras.layers.Dense(1)])
    >>> m.compile(loss=RealStepLoss("mse"))
    >>> check_real_step_loss(m)
    []
    >>> m.compile(loss=keras.losses.MeanSquaredError(reduction="mean_with_sample_weight"))
    >>> check_real_step_loss(m)  # doctest: +ELLIPSIS
    ["loss '...' uses reduction='mean_with_sample_weight': Keras reports a mean of per-batch figures, ..."]
    """
    compiled = _compiled_loss(model)
    # a functional model's symbolic outputs carry the mask Keras will apply (subclassed models: unknown)
    masked = [getattr(o, "_keras_mask", None) is not None for o in (getattr(model, "outputs", None) or [])]
    flat = compiled._flat_losses
    problems = []
    for i, entry in enumerate(flat):
        loss = entry.loss
        if loss is None or isinstance(loss, RealStepLoss):
            continue
        reduction = getattr(loss, "reduction", None)
        if reduction != "sum_over_batch_size":
            problems.append(f"loss {entry.name!r} uses reduction={reduction!r}: Keras reports a mean of per-batch "
                            "figures, not the mean over real steps")
        elif masked[i] if len(masked) == len(flat) else any(masked):
            problems.append(f"loss {entry.name!r} is computed on an output with a Keras mask: Keras divides each "
                            "batch by its unmasked steps, so it reports a mean of batch means")
    return problems

