"""Training and inference entry points: :func:`fit_stateful` (validated, in order, lane resets, real-step
losses, exact resumption), :func:`predict` (outputs in the original order) and :func:`evaluate` (bucketed
sequences, real-step means).
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from ... import _introspect
from ..._args import check_int
from ...errors import BatchSizeError, ModelMismatchError, ParameterError, ShuffleError, StatebatchWarning, StatefulLayoutError
from ...results.bucketing import Bucketing
from ...results.schedule import TrainingBackup, check_save_freq, plan_fingerprint
from ...results.stateful import Arranged
from ...results.windows import Windows
from .backends import check_distributed, needs_static_batch_feed
from .callbacks import LaneResetCallback, _BackupCallback, _ResumedLaneCallback
from .datasets import BucketDataset, Dataset, StatefulDataset
from .losses import _set_reduction, check_real_step_loss, use_real_step_loss
from .loop_errors import _original_errors
from .resume import _merged_history, _model_signature, _restore_training
from .state import model_batch_size, replicas, stateful_layers
from .tfdata import to_tf_dataset

__all__ = ["check_model", "fit_stateful", "predict", "evaluate"]

def check_model(model: Any, arranged: Arranged) -> None:
    """Fail early when ``model`` cannot run ``arranged`` statefully (batch size, timesteps, features).

    Examples
    --------
    >>> import keras, numpy as np, statebatch as sb
    >>> arranged = sb.arrange_stateful(np.arange(40.0), timesteps=5, batch_size=2)
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 4, 1)), keras.layers.LSTM(3, stateful=True)])
    >>> check_model(m, arranged)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    statebatch.errors.ModelMismatchError: the model expects 4 timesteps but the lanes are cut into chunks of 5...
    """
    from ...checking.validate import validate

    if not stateful_layers(model):
        raise StatefulLayoutError("the model has no stateful recurrent layer.",
                                  "build the RNN layers with stateful=True and "
                                  f"keras.Input(batch_shape={arranged.batch_shape}).")
    if arranged.covariates is not None:  # a model with several inputs, one of them the lanes ("past")
        return _check_covariate_model(model, arranged)
    shape = _introspect.input_shape(model)
    if shape is not None and shape[1] is not None:
        if arranged.jitter:
            raise ModelMismatchError(
                f"the model expects exactly {shape[1]} timesteps but jitter={arranged.jitter} varies the batch length.",
                f"build the model with keras.Input(batch_shape=({arranged.batch_size}, None, {arranged.n_features})).")
        if shape[1] != arranged.timesteps:
            raise ModelMismatchError(
                f"the model expects {shape[1]} timesteps but the lanes are cut into chunks of {arranged.timesteps}.",
                f"arrange with timesteps={shape[1]} or build the model with keras.Input(batch_shape="
                f"({arranged.batch_size}, None, {arranged.n_features})).")
    check_distributed(model)
    r = replicas(model)
    per_replica = model_batch_size(arranged, r)  # raises when the lanes do not split over the replicas
    if r > 1 and shape is not None and shape[0] not in (None, per_replica):
        raise ModelMismatchError(
            f"the model runs on {r} replicas of a tf.distribute strategy, each on its own block of "
            f"{per_replica} of the {arranged.batch_size} lanes, but it was built for batches of {shape[0]}.",
            f"build it inside strategy.scope() with keras.Input(batch_shape=({per_replica}, "
            f"{arranged.timesteps if not arranged.jitter else None}, {arranged.n_features})) "
            "(statebatch.keras.model_batch_size(arranged) gives the batch size).")
    first = arranged.batch(0)
    # Under a tf.distribute strategy each replica runs the model on its own block of lanes: check one.
    validate(*(a[:per_replica] for a in first[:2]), model=model, batch_size=per_replica,
             stateful=True, shuffle=False, emit_warnings=False)


def _check_covariate_model(model: Any, arranged: Arranged) -> None:
    """:func:`check_model` for lanes with covariates: the model's inputs are batch keys (by name), it is
    stateful, and its ``past`` input fits the lanes (batch size, timesteps, features)."""
    from ...checking.validate import validate
    from ...materialise.forecast import model_inputs

    if not stateful_layers(model):
        raise StatefulLayoutError("the model has no stateful recurrent layer.",
                                  "build the RNN layers with stateful=True and "
                                  f"keras.Input(batch_shape={arranged.batch_shape}, name='past').")
    first = arranged.batch(0)
    names, _ = model_inputs(model, list(first))
    if "past" in names:
        inp = model.inputs[names.index("past")] if isinstance(model.inputs, (list, tuple)) else None
        shape = None if inp is None else tuple(None if d is None else int(d) for d in inp.shape)
        if shape is not None and shape[1] is not None and shape[1] != arranged.timesteps:
            raise ModelMismatchError(
                f"the model's 'past' input expects {shape[1]} timesteps but the lanes are cut into chunks of "
                f"{arranged.timesteps}.", f"arrange with timesteps={shape[1]} or build the input with "
                f"keras.Input(batch_shape=({arranged.batch_size}, None, {arranged.n_features}), name='past').")
    if replicas(model) > 1:
        raise ParameterError("lanes with covariates are fed to one replica only.",
                             "train on one device, or drop static_cols/known_cols.")
    validate(first["past"], first.get("y"), batch_size=arranged.batch_size, stateful=True, shuffle=False,
             emit_warnings=False)


def fit_stateful(model: Any, train: Arranged | StatefulDataset, *, epochs: int = 1,
                 validation: Arranged | StatefulDataset | None = None,
                 callbacks: list | None = None, reset_on_epoch_begin: bool = True, real_step_loss: bool = True,
                 backup_dir: Any = None, save_freq: int | str = "epoch", **fit_kwargs: Any) -> Any:
    """``model.fit`` on arranged lanes, done right: validated first, in order, with lane resets, and
    (``real_step_loss``) losses that are means over real steps, not diluted by padding
    (:func:`use_real_step_loss`; this changes the compiled model's loss reduction).

    On the TensorFlow backend the batches go through :func:`to_tf_dataset` (static batch size,
    needed for ``batch_size=1``); elsewhere through the PyDataset. Returns ``History``.

    Parameters
    ----------
    backup_dir : str or path, optional
        Resumable training, in the manner of ``keras.callbacks.BackupAndRestore`` but exact in the
        middle of an epoch: every ``save_freq`` batches (or after every epoch with ``"epoch"``) the
        position ``(epoch, next batch)``, the weights, the optimizer's variables, the metrics' running
        sums and every stateful layer's lane states are written atomically to one file in
        ``backup_dir`` (:class:`~statebatch.schedule.TrainingBackup`). When the same call finds a
        backup, it restores it and trains on from the next batch (the epoch's plan is a pure function of
        the seed and the epoch), ending with what an uninterrupted run ends with. A backup written for
        another model (layer classes, weight and state shapes, optimizer), other data or another
        arrangement is refused (:class:`~statebatch.errors.StoreError`). The backup is removed when
        training finishes. A resumed epoch runs as a separate ``model.fit`` (your callbacks see it
        begin and end); validation of an epoch interrupted after its last batch is not rerun.
    save_freq : int or "epoch"
        How often the backup is written: every ``save_freq`` training batches, or after each epoch.

    Examples
    --------
    ``history = fit_stateful(model, arranged, epochs=10, validation=val)`` trains (not run here); every
    check comes first, so a wrong call fails before any batch is served:

    >>> import keras, numpy as np, statebatch as sb
    >>> arranged = sb.arrange_stateful(np.arange(40.0), timesteps=5, batch_size=2)
    >>> m = keras.Sequential([keras.Input(batch_shape=(2, 5, 1)), keras.layers.GRU(3, stateful=True)])
    >>> fit_stateful(m, arranged, shuffle=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    statebatch.errors.ShuffleError: shuffle=True scrambles lanes of a stateful model...
    """
    epochs = check_int("epochs", epochs, 1)
    save_freq = check_save_freq(save_freq)
    train_arr, val_arr = _check_fit(model, train, validation, callbacks, backup_dir, fit_kwargs)
    fit = _Fit(model, train, validation, train_arr, val_arr, callbacks=callbacks,
               reset_on_epoch_begin=reset_on_epoch_begin, normalise=_set_loss(model, real_step_loss))
    if backup_dir is None:
        return fit.run(train, fit.lanes_callback(), None, epochs=epochs, **fit_kwargs)
    backup = TrainingBackup(backup_dir, {
        "model": _model_signature(model),
        "data": plan_fingerprint(train_arr, reset_on_epoch_begin=bool(reset_on_epoch_begin),
                                 real_step_loss=bool(real_step_loss)),
        "validation": "none" if val_arr is None else plan_fingerprint(val_arr)})
    return _fit_from_backup(fit, backup, save_freq, epochs, fit_kwargs)


def _check_fit(model: Any, train: Any, validation: Any, callbacks: list | None, backup_dir: Any,
               fit_kwargs: dict[str, Any]) -> tuple[Arranged, Arranged | None]:
    """The arrangements to fit and validate on, after every check :func:`fit_stateful` makes before training
    (drops ``shuffle=False`` from ``fit_kwargs``: fit_stateful passes it itself)."""
    train_arr = train.arranged if isinstance(train, StatefulDataset) else train
    val_arr = validation.arranged if isinstance(validation, StatefulDataset) else validation
    if not isinstance(train_arr, Arranged):
        raise ParameterError(f"fit_stateful needs arranged lanes, got {type(train).__name__}.",
                             "pass statebatch.arrange_stateful(...) (or its StatefulDataset).")
    if fit_kwargs.get("shuffle", False):
        raise ShuffleError("shuffle=True scrambles lanes of a stateful model.", "leave shuffle out (False).")
    fit_kwargs.pop("shuffle", None)
    for cb in callbacks or []:
        if isinstance(cb, keras.callbacks.BackupAndRestore):
            # it restores weights at an epoch start but not the lanes' states or the position inside
            # an epoch's plan: a resumed run silently ends elsewhere than an uninterrupted one
            raise ParameterError(
                "keras.callbacks.BackupAndRestore does not save the lanes' recurrent states or the position in "
                "the epoch's plan, so a run it resumes ends with other weights than an uninterrupted one.",
                "drop it and pass fit_stateful(..., backup_dir=DIR, save_freq=N): exact resumption mid-epoch.")
    if backup_dir is not None and "initial_epoch" in fit_kwargs:
        raise ParameterError("initial_epoch cannot be combined with backup_dir: the backup says where training "
                             "stands.", "leave initial_epoch out (a fresh run starts at epoch 0).")
    check_model(model, train_arr)
    if val_arr is not None and val_arr.batch_size != train_arr.batch_size:
        raise BatchSizeError(f"validation lanes ({val_arr.batch_size}) differ from training lanes "
                             f"({train_arr.batch_size}).", "arrange both with the same batch_size.")
    return train_arr, val_arr


def _set_loss(model: Any, real_step_loss: bool) -> bool:
    """Make the compiled loss a real-step mean; returns whether batch weights must be normalised instead.

    Under a tf.distribute strategy each replica reduces the loss over its own block of lanes and the
    gradients are summed: "mean_with_sample_weight" would average per-replica means (blocks with
    more padding would count more). Instead the weights of each global batch are scaled to average 1
    and the loss divides by every step ("sum_over_batch_size"): the same real-step mean of the global
    batch, split over replicas exactly. (Only TensorFlow's strategies have several replicas.)
    """
    normalise = bool(real_step_loss) and replicas(model) > 1
    if normalise:
        _set_reduction(model, "sum_over_batch_size")
    elif real_step_loss:  # where no weight is 0 this changes nothing: the sum of the weights is the step count
        use_real_step_loss(model)
    return normalise


class _Fit:
    """One :func:`fit_stateful` call: how its data is fed to ``model.fit``, and its lane callbacks."""

    def __init__(self, model: Any, train: Any, validation: Any, train_arr: Arranged, val_arr: Arranged | None, *,
                 callbacks: list | None, reset_on_epoch_begin: bool, normalise: bool):
        self.model, self.train, self.validation = model, train, validation
        self.train_arr, self.val_arr = train_arr, val_arr
        self.callbacks = list(callbacks or [])
        self.reset_on_epoch_begin, self.normalise = reset_on_epoch_begin, normalise

    def lanes_callback(self, cls: type = LaneResetCallback, **kwargs: Any) -> LaneResetCallback:
        cb = cls(self.train_arr, self.val_arr, reset_on_epoch_begin=self.reset_on_epoch_begin, **kwargs)
        cb.weights_normalised = self.normalise
        if self.val_arr is not None and not self.normalise:
            cb.exact_validation_loss(self.model)  # val_loss: the mean over the held-out steps
        return cb

    def feed(self, data: Any) -> Any:
        """What ``model.fit`` is given for ``data`` (arranged lanes or their dataset)."""
        if self.normalise:
            # Under a strategy Keras takes one batch of a tf.data pass to build the model and
            # abandons the pass; the PyDataset serves batches by index, so no epoch is consumed.
            if isinstance(data, _WeightsAverageOne):
                return data
            ds = _WeightsAverageOne(data.arranged if isinstance(data, StatefulDataset) else data)
            if isinstance(data, StatefulDataset):
                ds.load_state_dict(data.state_dict())  # a resumed epoch keeps its position
            return ds
        covariates = (data.arranged if isinstance(data, StatefulDataset) else data).covariates is not None
        if covariates and isinstance(data, StatefulDataset) and getattr(data, "_input_model", None) is None:
            data._input_model = self.model  # each model input gets the batch key of its name
        if needs_static_batch_feed():  # a static batch size; lanes with covariates: dicts of tensors by input name
            return to_tf_dataset(data, model=self.model if covariates and not isinstance(data, StatefulDataset)
                                 else None)
        if isinstance(data, StatefulDataset):
            ds = data
        else:
            with warnings.catch_warnings():  # the batch_size=1 warning: handled right here
                warnings.simplefilter("ignore")
                ds = StatefulDataset(data)
        if covariates and getattr(ds, "_input_model", None) is None:
            ds._input_model = self.model  # each model input gets the batch key of its name
        return ds

    def run(self, data: Any, lanes_cb: LaneResetCallback, backup_cb: Any, **kwargs: Any) -> Any:
        with _original_errors():
            fed = self.feed(data)  # before the validation data, as always
            validation = None if self.validation is None else self.feed(self.validation)
            return self.model.fit(fed, shuffle=False, validation_data=validation,
                                  callbacks=[lanes_cb] + ([backup_cb] if backup_cb else []) + self.callbacks, **kwargs)


def _fit_from_backup(fit: _Fit, backup: TrainingBackup, save_freq: int | str, epochs: int,
                     fit_kwargs: dict[str, Any]) -> Any:
    """Train with backups: restore the backup if there is one, finish its epoch, train the other epochs."""
    model, train, train_arr = fit.model, fit.train, fit.train_arr
    epoch, batch, metrics, histories = 0, 0, None, []
    if backup.exists():
        header, arrays = backup.load()
        epoch, batch = header["epoch"], header["batch"]
        if epoch > epochs or (epoch == epochs and batch > 0):
            raise ParameterError(f"the backup in {str(backup.directory)!r} stands at epoch {epoch}, batch {batch}, "
                                 f"beyond epochs={epochs}.", f"pass epochs > {epoch}, or another backup_dir to start over.")
        _restore_training(model, arrays, str(backup.path))
        metrics = arrays.get("metrics")
    if batch > 0:  # the rest of the interrupted epoch, from the restored state
        ds = train if isinstance(train, StatefulDataset) else None
        if ds is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = StatefulDataset(train_arr)
        ds.load_state_dict({"epoch": epoch, "batch": batch})
        lanes_cb = fit.lanes_callback(_ResumedLaneCallback, offset=batch)
        histories.append(fit.run(ds, lanes_cb, _BackupCallback(backup, save_freq, train_arr, offset=batch,
                                                               metrics=metrics),
                                 epochs=epoch + 1, initial_epoch=epoch, **fit_kwargs))
        epoch += 1
    if epoch < epochs:
        train_arr.set_epoch(epoch)
        if isinstance(train, StatefulDataset):
            train.load_state_dict({"epoch": epoch, "batch": 0})
        histories.append(fit.run(train, fit.lanes_callback(), _BackupCallback(backup, save_freq, train_arr),
                                 epochs=epochs, initial_epoch=epoch, **fit_kwargs))
    backup.remove()
    return _merged_history(model, histories)


class _WeightsAverageOne(StatefulDataset):
    """Batches whose sample weights are scaled to average 1 over the batch (an all-padding batch stays 0):
    with the ``"sum_over_batch_size"`` reduction the loss is the batch's real-step mean, also when the
    batch is split over replicas (see :func:`fit_stateful`)."""

    def __getitem__(self, k: int):
        out = super().__getitem__(k)
        if len(out) < 3:
            return out
        w = np.asarray(out[2])
        total = float(w.sum(dtype=np.float64))
        return (*out[:2], (w * (w.size / total)).astype(w.dtype) if total > 0 else w)


def predict(model: Any, data: Any, *, callbacks: list | None = None, verbose: int = 0) -> Any:
    """Predictions in the original order, on every backend: per window, per sequence or per series.

    Parameters
    ----------
    model : keras.Model
    data : Windows, Bucketing or Arranged (or their datasets)

    Returns
    -------
    Windows: ndarray ``(n_windows, ...)`` (:meth:`Windows.unbatch`); forecasting windows feed each model
    input the batch key of its name (:func:`~statebatch.split_xy`). Bucketing: a list of
    ``(length_i, ...)`` arrays for per-step outputs, else ``(n_sequences, ...)``
    (:meth:`Bucketing.unbatch`); batches run one by one, so outputs of different lengths never need
    concatenating (Keras' ``predict`` cannot on JAX and torch). Arranged: a list with one
    ``(length_i, ...)`` array per series, run with :class:`LaneResetCallback` (:meth:`Arranged.unbatch`).

    Examples
    --------
    >>> import keras, numpy as np, statebatch as sb
    >>> windows = sb.make_windows(np.arange(20.0), timesteps=4, batch_size=8)
    >>> m = keras.Sequential([keras.Input((4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    >>> predict(m, windows).shape  # one output per window, in window order
    (17, 1)
    """
    result = data.result if isinstance(data, Dataset) else data
    if isinstance(result, Arranged):
        ds = data if isinstance(data, StatefulDataset) else StatefulDataset(result, resets_by="callback")
        if result.covariates is not None and getattr(ds, "_input_model", None) is None:
            ds._input_model = model  # lanes with covariates: each model input gets the batch key of its name
        cb = LaneResetCallback(result)
        # Keras' TensorFlow adapter reads the first batches (to infer their spec) before any callback
        # runs; this callback will reset their lanes, so the dataset may hand them out.
        cb._resetting(True)
        try:
            with _original_errors():
                out = model.predict(ds, callbacks=[cb] + list(callbacks or []), verbose=verbose)
        finally:
            cb._resetting(False)
        return result.unbatch(out)
    if isinstance(result, Bucketing):
        ds = data if isinstance(data, BucketDataset) else BucketDataset(result)
        return ds.unbatch([np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(ds[k][0])))
                           for k in range(len(ds))])
    if isinstance(result, Windows):
        epoch = result.epoch
        outs = [np.asarray(keras.ops.convert_to_numpy(model.predict_on_batch(_window_inputs(model, result, k, epoch))))
                for k in range(result.plan(epoch).n_batches)]
        return result.unbatch(outs, epoch=epoch)
    raise ParameterError(f"predict needs a statebatch result or dataset, got {type(data).__name__}.",
                         "pass make_windows(...), bucket_batches(...) or arrange_stateful(...).")


def _window_inputs(model: Any, windows: Windows, k: int, epoch: int) -> Any:
    """The model inputs of batch ``k``: ``X``, or of forecasting windows the batch keys of the model's
    input names (:func:`~statebatch.split_xy`, which refuses an input the windows lack)."""
    batch = windows.batch(k, epoch)
    if isinstance(batch, dict):
        from ...materialise.forecast import split_xy

        x = split_xy(batch, model=model)[0]
        return tuple(x) if isinstance(x, list) else x
    return batch[0]


def evaluate(model: Any, data: Any, *, epoch: int | None = None, **evaluate_kwargs: Any) -> Any:
    """``model.evaluate`` over bucketed sequences: the same batches on every call, and figures that are
    means over real steps, or a :class:`~statebatch.errors.StatebatchWarning` naming the loss that is not.

    Parameters
    ----------
    model : compiled keras.Model
    data : Bucketing or BucketDataset
    epoch : int, optional
        The plan to evaluate (default: the bucketing's current epoch). A ``Bucketing`` is not moved to its
        next epoch (``model.evaluate(BucketDataset(bk))`` moves it, re-bucketing the next call).
    **evaluate_kwargs : passed to ``model.evaluate`` (``verbose``, ``return_dict``, ``callbacks``...).

    Examples
    --------
    >>> import keras, numpy as np, statebatch as sb, statebatch.keras
    >>> bk = sb.bucket_batches([np.ones((3, 1)), np.ones((5, 1)), np.ones((4, 1))], 2,
    ...                        targets=[np.ones(3), np.ones(5), np.ones(4)], return_sequences=True)
    >>> m = keras.Sequential([keras.Input((None, 1)), keras.layers.Dense(1, kernel_initializer="zeros")])
    >>> m.compile(loss=statebatch.keras.RealStepLoss("mse"))
    >>> evaluate(m, bk)  # every real step has error 1; the padding counts for nothing
    1.0
    """
    if isinstance(data, BucketDataset):
        ds = data if epoch is None and data.fixed_epoch is not None else BucketDataset(
            data.result, epoch=data._epoch() if epoch is None else epoch, step_weights=data.step_weights)
    elif isinstance(data, Bucketing):
        ds = BucketDataset(data, epoch=data.epoch if epoch is None else epoch)
    else:
        raise ParameterError(f"statebatch.keras.evaluate takes bucketed sequences, got {type(data).__name__}.",
                             "pass statebatch.bucket_batches(...) or its BucketDataset (other data: model.evaluate).")
    if ds._per_step is not None:
        problems = check_real_step_loss(model)
        if problems:
            warnings.warn("the loss evaluate reports is not the mean over real steps: " + "; ".join(problems) + ". Compile "
                          "with loss=statebatch.keras.RealStepLoss(<your loss>) (or the default reduction on an output "
                          "without a Keras mask); weighted_metrics are exact either way.", StatebatchWarning, stacklevel=2)
    evaluate_kwargs.setdefault("verbose", 0)
    with _original_errors():
        return model.evaluate(ds, **evaluate_kwargs)

