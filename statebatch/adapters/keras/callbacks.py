"""Keras callbacks: :class:`LaneResetCallback` maps the lane schedule (:mod:`statebatch.results.schedule`)
onto Keras' callback hooks; the backup callbacks write and resume :func:`fit_stateful`'s training backup.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from ... import _introspect
from ...errors import BatchSizeError, ParameterError, StatebatchWarning, StatefulLayoutError
from ...results.schedule import LaneSchedule, TrainingBackup, ValidationSchedule
from ...results.stateful import Arranged
from .backends import backend, sync_trainer, track_state, untrack_state
from .losses import REAL_STEP_REDUCTION, _reductions, _set_reduction
from .resume import _assign, _numpy, _weight_variables
from .state import KerasState, replicas

__all__ = ["LaneResetCallback"]


class LaneResetCallback(keras.callbacks.Callback):
    """Reset recurrent state per lane: all lanes at the start of every epoch, and before each batch
    only the lanes that start a new series there.

    Parameters
    ----------
    data : Arranged or StatefulDataset (or batch shards of an arrangement)
        The training (or, for a standalone ``evaluate``/``predict``, the evaluated) arrangement.
    validation_data : Arranged or StatefulDataset, optional
        The arrangement used as ``validation_data`` in ``fit``. Training state is saved before
        validation and restored after it. Validation starts from zero state and resets its own lanes;
        the validation part of :meth:`Arranged.split` replays each series' training part (weight 0)
        before its held-out steps, so those start from the state the series' history leads to.
    reset_on_epoch_begin : bool
        Zero all lanes at the start of every epoch (default). With ``False`` state also flows from
        the end of one epoch into the next.
    """

    def __init__(self, data: Any, validation_data: Any = None, *, reset_on_epoch_begin: bool = True):
        super().__init__()
        self.train = LaneSchedule(data, reset_on_epoch_begin=reset_on_epoch_begin)
        self.batch_size = self.train.batch_size
        self.validation = None
        if validation_data is not None:
            self.validation = ValidationSchedule(validation_data)
            if self.validation.lanes.batch_size != self.batch_size:
                raise BatchSizeError(
                    f"validation data is arranged with batch_size={self.validation.lanes.batch_size} but training "
                    f"data with {self.batch_size}; a stateful model has one fixed batch size.",
                    f"arrange the validation series with batch_size={self.batch_size}.")
        self.reset_on_epoch_begin = reset_on_epoch_begin
        self._state: KerasState | None = None
        self._in_fit = False
        self._tracked: list[list] = []  # what each running fit/evaluate/predict made track_state change
        self._val_factor: float | None = None   # exact_validation_loss: steps / sum(weights) of an epoch
        self._val_reductions: list | None = None

    @property
    def resets_done(self) -> int:
        return self.train.resets_done

    def _begin(self) -> KerasState:
        """Start of fit/evaluate/predict: carry state on this backend, and find it."""
        self._tracked.append(track_state(self.model))
        return self._find_state()

    def _end(self) -> None:
        if self._tracked:
            untrack_state(self.model, self._tracked.pop())

    def _find_state(self) -> KerasState:
        state = KerasState(self.model)
        if not state.layers:
            raise StatefulLayoutError("the model has no stateful recurrent layer to reset.",
                                      "build the RNN layers with stateful=True, or drop LaneResetCallback.")
        r = replicas(self.model)
        for i, v in enumerate(state.variables):
            if state.rows(i) != self.batch_size:
                layer = next(la for la in state.layers if any(w is v for w in _introspect.state_variables(la)))
                per = f" ({r} replicas of {int(v.shape[0])})" if r > 1 else ""
                raise BatchSizeError(
                    f"layer {layer.name!r} keeps {state.rows(i)} parallel states{per} but the data has "
                    f"{self.batch_size} lanes.",
                    f"build the model with keras.Input(batch_shape=(statebatch.keras.model_batch_size(arranged), T, "
                    f"F)), i.e. ({self.batch_size // r if self.batch_size % r == 0 else self.batch_size}, T, F)"
                    + (f" inside the strategy's scope: each of the {r} replicas runs its own block of lanes" if r > 1
                       else "") + ".")
        spe = getattr(self.model, "steps_per_execution", 1)
        spe = int(getattr(spe, "numpy", lambda: spe)()) if not isinstance(spe, int) else spe
        if spe != 1 and np.asarray(self.train.result.resets)[1:].any():
            raise ParameterError(
                f"steps_per_execution={spe}: Keras calls batch callbacks once per {spe} batches, so lanes cannot be "
                "reset before the right batch.", "compile the model with steps_per_execution=1.")
        self._state = state
        return state

    def _check_steps(self, what: str) -> None:
        steps = (self.params or {}).get("steps")
        n = self.train.n_batches()
        if steps is not None and int(steps) != n:
            raise ParameterError(
                f"{what} runs {steps} steps per epoch but the arrangement this LaneResetCallback resets has {n} "
                "batches: its resets would fall on the wrong batches.",
                "give the callback the arrangement the dataset serves, and leave steps_per_epoch / steps unset (one "
                "epoch is every batch of the arrangement).")

    def _resetting(self, on: bool) -> None:
        """Tell the datasets of these arrangements that their resets are taken care of."""
        for result in (self.train.result, getattr(getattr(self.validation, "lanes", None), "result", None)):
            if result is not None and hasattr(result, "__dict__"):
                result.__dict__["_resetting"] = self if on else None

    # -- fit
    def on_train_begin(self, logs=None):
        self._check_steps("fit")
        self._in_fit = True
        self._begin()
        self._resetting(True)
        self._warn_diluted_loss()

    def _warn_diluted_loss(self) -> None:
        if getattr(self, "weights_normalised", False):  # fit_stateful on replicas: weights average 1
            return
        compiled = getattr(self.model, "_compile_loss", None)
        reductions = {getattr(e.loss, "reduction", None) for e in (getattr(compiled, "_flat_losses", None) or [])}
        results = [self.train.result] + ([self.validation.lanes.result] if self.validation is not None else [])
        padding = max(float(getattr(r, "padding_fraction", 0.0)) for r in results)
        if padding > 0 and reductions - {REAL_STEP_REDUCTION, None}:
            warnings.warn(f"{padding:.1%} of the steps are padding (sample weight 0), and the model's loss divides by "
                          "all steps, so reported losses are diluted by the padding: call "
                          "statebatch.keras.use_real_step_loss(model) before fit (fit_stateful does), or compile with "
                          "reduction='mean_with_sample_weight'.", StatebatchWarning, stacklevel=2)

    def on_train_end(self, logs=None):
        self._in_fit = False
        self._resetting(False)
        self._end()

    def on_epoch_begin(self, epoch, logs=None):
        self.train.epoch_begin(self._state, epoch)

    def on_epoch_end(self, epoch, logs=None):
        if self._val_factor is not None and logs is not None and "val_loss" in logs:
            # Keras averages the validation batches' sum(w * loss) / steps; the held-out mean is that
            # times (all steps / the sum of the weights). The dict is the one History records next.
            logs["val_loss"] = float(logs["val_loss"]) * self._val_factor

    def exact_validation_loss(self, model: Any) -> bool:
        """Make ``val_loss`` inside ``fit`` the mean over the held-out steps of the epoch.

        A validation arrangement replays every series from its start with weight 0 until its held-out
        steps (to rebuild the state), so many of its batches hold no held-out step at all; with the
        per-batch mean (``"mean_with_sample_weight"``) Keras would count each of them as a loss of 0
        and average batch means of different sizes. Instead the validation loss divides by every step
        and is rescaled once per epoch by ``steps / sum(weights)``: exact whatever the batches hold.
        Only for one compiled loss without extra model losses (regularisers would be rescaled too);
        returns whether it applies. :func:`fit_stateful` calls it with the model it trains.
        """
        reductions = _reductions(model)
        if (self.validation is None or len(reductions) != 1 or list(model.losses)
                or reductions[0] not in (REAL_STEP_REDUCTION, "sum_over_batch_size")):  # a mean, not a sum
            return False
        w = self.validation.lanes.result.sample_weight
        if w is None or not np.asarray(w).sum() > 0:
            return False
        w = np.asarray(w, dtype=np.float64)
        self._val_factor = float(w.size / w.sum())
        return True

    def on_train_batch_begin(self, batch, logs=None):
        self.train.batch_begin(self._state, batch)

    # -- evaluate (also validation inside fit)
    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._check_steps("evaluate")
            self._begin()
            self._resetting(True)
        if self._in_fit:
            if self.validation is None:
                raise ParameterError(
                    "fit runs validation on the stateful model, but LaneResetCallback was not given the validation "
                    "arrangement, so it cannot reset its lanes or keep its state apart.",
                    "pass LaneResetCallback(train, validation_data=val) (or use statebatch.keras.fit_stateful).")
            self.validation.begin(self._state)
            if self._val_factor is not None:
                # The validation loss divides by every step (no per-batch mean), so that the epoch figure
                # is sum(w * loss) / steps, which on_epoch_end turns into the mean over held-out steps.
                # The test step is traced after this (Keras makes it lazily), the train step keeps its own.
                self._val_reductions = _reductions(self.model)
                _set_reduction(self.model, "sum_over_batch_size", retrace=False)
        else:
            self._state.zero(None)

    def on_test_batch_begin(self, batch, logs=None):
        if self._in_fit:
            self.validation.batch_begin(self._state, batch)
        else:  # a standalone evaluate of `data`, from zero state
            self.train.batch_begin(self._state, batch)

    def on_test_end(self, logs=None):
        if self._in_fit and self.validation is not None:
            self.validation.end(self._state)
        if self._val_reductions is not None:  # the training loss again (see exact_validation_loss)
            _set_reduction(self.model, self._val_reductions, retrace=False)
            self._val_reductions = None
        if not self._in_fit:
            self._resetting(False)
            self._end()

    # -- predict
    def on_predict_begin(self, logs=None):
        self._check_steps("predict")
        self._begin().zero(None)
        self._resetting(True)

    def on_predict_end(self, logs=None):
        self._resetting(False)
        self._end()

    def on_predict_batch_begin(self, batch, logs=None):
        self.train.batch_begin(self._state, batch)



class _BackupCallback(keras.callbacks.Callback):
    """Writes :func:`fit_stateful`'s backup: after every ``save_freq`` batches, or after each epoch."""

    def __init__(self, backup: TrainingBackup, save_freq: int | str, arranged: Arranged, *, offset: int = 0,
                 metrics: list[np.ndarray] | None = None):
        super().__init__()
        self.backup, self.save_freq, self.arranged = backup, save_freq, arranged
        self.offset = offset  # a resumed epoch: fit's batch 0 is batch `offset` of the epoch's plan
        self._metrics = metrics  # running metric sums at the interrupted batch, put back when the epoch begins
        self._since = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self._metrics is not None:  # Keras reset them just before; the resumed epoch continues the sums
            sync_trainer(self.model)
            _assign(list(self.model.metrics_variables), self._metrics, "metric variables", str(self.backup.path))
            self._metrics = None

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._since += 1
        if self._since >= self.save_freq:
            self._since = 0
            self._save(self._epoch, int(batch) + self.offset + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.offset = 0
        if self.save_freq == "epoch":
            self._save(epoch + 1, 0)

    def _save(self, epoch: int, batch: int) -> None:
        if batch >= self.arranged.plan(epoch).n_batches:  # the epoch's batches are done
            epoch, batch = epoch + 1, 0
        model = self.model
        sync_trainer(model)  # JAX: the trainer holds the live values
        optimizer = getattr(model, "optimizer", None)
        arrays = {"weights": _numpy(_weight_variables(model)),
                  "optimizer": _numpy(list(optimizer.variables)) if optimizer is not None else [],
                  "states": KerasState(model).snapshot(),
                  }
        if batch > 0:  # within an epoch: the metrics' running sums, so that the resumed epoch reports the same figures
            arrays["metrics"] = _numpy(list(model.metrics_variables))
        self.backup.save(epoch, batch, arrays, backend=backend())


class _ResumedLaneCallback(LaneResetCallback):
    """:class:`LaneResetCallback` for the rest of an interrupted epoch: fit's batch ``i`` is batch
    ``offset + i`` of the epoch's plan, and the restored lane states are not zeroed when it begins."""

    def __init__(self, *args: Any, offset: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.offset = offset

    def _check_steps(self, what: str) -> None:
        steps = (self.params or {}).get("steps")
        if steps is not None and int(steps) != self.train.n_batches() - self.offset:
            raise ParameterError(f"{what} runs {steps} steps for the rest of an epoch of {self.train.n_batches()} "
                                 f"batches resumed at batch {self.offset}.", "leave steps_per_epoch unset.")

    def on_epoch_begin(self, epoch, logs=None):
        self.train.result.set_epoch(epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self.train.batch_begin(self._state, int(batch) + self.offset)


