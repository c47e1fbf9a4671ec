"""Keras 3 integration: PyDatasets for windows and lanes, and a callback that resets state per lane.

Importing this module imports keras. Verified on the TensorFlow backend (Keras 3.15, TF 2.21, CPU);
the callback uses only the Keras variable API (``variable.assign``, ``keras.ops``), so the JAX and
torch backends are expected to work but are not tested here.

Keras 3 facts this module relies on (checked in the installed version, see tests):

- ``fit(shuffle=True)`` (the default) permutes a finite PyDataset's batch indices every epoch, so
  :class:`StatefulDataset` refuses out-of-order requests with a clear error.
- There is no ``Model.reset_states()`` and no per-row reset: :class:`LaneResetCallback` finds every
  stateful RNN layer (inside nested models, ``Bidirectional`` and stacks) and zeroes rows of its
  state variables with ``v.assign(v * keep)``.
- Validation inside ``fit`` runs the same stateful layers and overwrites their state: the callback
  saves the training state before validation and restores it afterwards.

Multi-replica training: with a distribution strategy the global batch of ``batch_size`` rows is
split into consecutive blocks of ``batch_size / replicas`` rows, one per replica, in every batch; a
lane therefore stays on the same replica as long as ``batch_size`` is divisible by the number of
replicas (``validate(..., num_replicas=R)`` checks it).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from . import _introspect
from .errors import BatchSizeError, ModelMismatchError, ParameterError, ShuffleError, StatefulLayoutError
from .stateful import Arranged
from .windows import Windows

__all__ = ["WindowDataset", "StatefulDataset", "LaneResetCallback", "fit_stateful", "reset_rows",
           "stateful_layers", "check_model", "BucketDataset", "to_tf_dataset", "ShardDataset"]


def stateful_layers(model: Any) -> list[Any]:
    """Every stateful recurrent layer of ``model``, also inside nested models and wrappers."""
    return _introspect.stateful_layers(model)


def reset_rows(model_or_layers: Any, rows: Any = None) -> None:
    """Zero the recurrent state of some rows (lanes); all rows when ``rows`` is ``None``.

    Parameters
    ----------
    model_or_layers : keras.Model or list of layers
    rows : bool mask ``(batch_size,)`` or integer indices of the lanes to reset.
    """
    layers = model_or_layers if isinstance(model_or_layers, (list, tuple)) else stateful_layers(model_or_layers)
    for layer in layers:
        for v in _introspect.state_variables(layer):
            if rows is None:
                v.assign(keras.ops.zeros_like(v))
                continue
            keep = np.ones(v.shape[0], dtype=bool)
            keep[np.asarray(rows)] = False
            if keep.all():
                continue
            mask = keep.astype(keras.backend.standardize_dtype(v.dtype)).reshape((-1,) + (1,) * (len(v.shape) - 1))
            v.assign(v * keras.ops.convert_to_tensor(mask))


def _state_snapshot(layers) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(v) for layer in layers for v in _introspect.state_variables(layer)]


def _state_restore(layers, snapshot: list[np.ndarray]) -> None:
    values = iter(snapshot)
    for layer in layers:
        for v in _introspect.state_variables(layer):
            v.assign(next(values))


class WindowDataset(keras.utils.PyDataset):
    """Windows from :func:`~statebatch.make_windows` as a Keras ``PyDataset`` (non-stateful models).

    Each batch is materialised from the zero-copy window view with one gather; the window order is
    reshuffled every epoch from ``seed`` (deterministic). The fast replacement for
    ``keras.utils.timeseries_dataset_from_array`` inside ``fit``.

    Parameters
    ----------
    windows : Windows
    batch_size : int
    shuffle : bool
        Shuffle windows each epoch (across batches, not only batch order).
    seed : int, optional
    drop_remainder : bool
        Leave out the last, smaller batch.
    **kwargs : passed to ``keras.utils.PyDataset`` (``workers``, ``use_multiprocessing``...).
    """

    def __init__(self, windows: Windows, batch_size: int = 32, *, shuffle: bool = True, seed: int | None = None,
                 drop_remainder: bool = False, sample_weight: np.ndarray | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(windows, Windows):
            raise ParameterError(f"WindowDataset needs statebatch Windows, got {type(windows).__name__}.",
                                 "build them with statebatch.make_windows(...).")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ParameterError(f"batch_size must be a positive integer, got {batch_size!r}.", "pass e.g. 32.")
        self.windows = windows
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = seed
        self.drop_remainder = drop_remainder
        self.sample_weight = sample_weight
        self.epoch = 0
        self._order = self._new_order()

    def _new_order(self) -> np.ndarray | None:
        if not self.shuffle:
            return None
        seed = None if self.seed is None else (self.seed, self.epoch)
        return np.random.default_rng(seed).permutation(self.windows.n_windows)

    def __len__(self) -> int:
        n = self.windows.n_windows
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def __getitem__(self, k: int):
        if not 0 <= k < len(self):
            raise IndexError(k)
        lo, hi = k * self.batch_size, min((k + 1) * self.batch_size, self.windows.n_windows)
        idx = slice(lo, hi) if self._order is None else self._order[lo:hi]
        batch = self.windows.take(idx)
        if self.sample_weight is not None and len(batch) == 2:
            batch = batch + (np.asarray(self.sample_weight)[idx],)
        return batch

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._new_order()


class StatefulDataset(keras.utils.PyDataset):
    """Arranged lanes as a Keras ``PyDataset`` that yields batches strictly in order.

    Batch ``k`` is ``(X_k, y_k, sample_weight_k)`` (``(X_k,)`` without targets), each ``batch_size``
    rows, row ``i`` continuing row ``i`` of batch ``k-1``. Use with ``fit(..., shuffle=False)``,
    ``evaluate`` and ``predict``, together with :class:`LaneResetCallback`. A request out of order
    (``fit`` shuffles a PyDataset's batches unless ``shuffle=False``) raises
    :class:`~statebatch.errors.ShuffleError` instead of training on scrambled lanes. On the
    TensorFlow backend Keras fetches batches inside ``tf.data``, which re-raises it as an
    ``InvalidArgumentError`` whose message starts with the ShuffleError and its fix.
    """

    def __init__(self, arranged: Arranged, *, materialise: bool = False, **kwargs):
        workers = kwargs.get("workers", 1)
        if workers > 1 or kwargs.get("use_multiprocessing", False):
            raise ParameterError(
                "StatefulDataset runs with workers=1: parallel workers could reorder lanes, and each batch "
                "is one gather already.", "drop the workers/use_multiprocessing arguments.")
        super().__init__(**kwargs)
        if not isinstance(arranged, Arranged):
            raise ParameterError(f"StatefulDataset needs an Arranged result, got {type(arranged).__name__}.",
                                 "build it with statebatch.arrange_stateful(...).")
        self.arranged = arranged
        if arranged.batch_size == 1 and keras.backend.backend() == "tensorflow":
            import warnings

            from .errors import StatebatchWarning

            warnings.warn(
                "batch_size=1: Keras' PyDataset adapter gives the TensorFlow backend an unknown batch size, "
                "which a stateful RNN with one lane rejects in fit ('enters the loop with shape (1, units)'). "
                "Use statebatch.keras.fit_stateful, StatefulDataset.to_tf_dataset(), or arranged.fit_kwargs().",
                StatebatchWarning, stacklevel=2)
        if materialise:
            arranged.X  # noqa: B018  materialise once, then batches are slices
        self._next = 0

    @property
    def batch_size(self) -> int:
        return self.arranged.batch_size

    @property
    def resets(self) -> np.ndarray:
        return self.arranged.resets

    def __len__(self) -> int:
        return self.arranged.n_batches

    def __getitem__(self, k: int):
        if not 0 <= k < len(self):
            raise IndexError(k)
        if k != 0 and k != self._next:
            expected = self._next
            self._next = 0
            after = "first in the epoch" if expected == 0 else f"after batch {expected - 1}"
            raise ShuffleError(
                f"stateful batches were requested out of order (batch {k} {after}); "
                "Keras shuffles a PyDataset's batches when fit(shuffle=True), its default, which would "
                "scramble which lane continues which.",
                "pass shuffle=False to model.fit (or use statebatch.keras.fit_stateful).")
        self._next = k + 1
        return self.arranged.batch(k)

    def on_epoch_end(self) -> None:
        self._next = 0

    def to_tf_dataset(self):
        """A ``tf.data.Dataset`` of the same batches, in order, with the batch size static.

        Keras' PyDataset adapter declares the batch axis as unknown; a stateful RNN with
        ``batch_size=1`` on TensorFlow cannot be traced that way, a static batch axis can.
        Keras never shuffles a ``tf.data.Dataset``.
        """
        import tensorflow as tf

        first = self.arranged.batch(0)
        signature = tuple(tf.TensorSpec(shape=a.shape, dtype=tf.as_dtype(a.dtype)) for a in first)

        def batches():
            self._next = 0
            for k in range(len(self)):
                yield self[k]

        ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
        return ds.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(2)


def _resets_of(data: Any) -> tuple[np.ndarray, bool, int]:
    if isinstance(data, (StatefulDataset, ShardDataset)):
        data = data.arranged if isinstance(data, StatefulDataset) else data.shards
    if getattr(data, "resets", None) is not None and hasattr(data, "batch_size"):  # Arranged, BatchShards
        return data.resets, bool(getattr(data, "continues", False)), int(data.batch_size)
    raise ParameterError(f"expected an Arranged result or a StatefulDataset, got {type(data).__name__}.",
                         "pass what statebatch.arrange_stateful returned (or its StatefulDataset).")


class ShardDataset(keras.utils.PyDataset):
    """Batches written by :func:`statebatch.store.write_batches`, read back one at a time, in order.

    For arranged lanes, out-of-order requests raise :class:`~statebatch.errors.ShuffleError` as in
    :class:`StatefulDataset` (pass ``shuffle=False``); windows may be shuffled by ``fit``.
    """

    def __init__(self, shards: Any, **kwargs):
        from .store import BatchShards

        super().__init__(**kwargs)
        self.shards = shards if isinstance(shards, BatchShards) else BatchShards(shards)
        self._ordered = self.shards.resets is not None
        self._next = 0

    @property
    def batch_size(self) -> int:
        return self.shards.batch_size

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, k: int):
        if self._ordered:
            if k != 0 and k != self._next:
                self._next = 0
                raise ShuffleError(f"stateful batches were requested out of order (batch {k}).",
                                   "pass shuffle=False to model.fit.")
            self._next = k + 1
        return self.shards[k]

    def on_epoch_end(self) -> None:
        self._next = 0


class LaneResetCallback(keras.callbacks.Callback):
    """Reset recurrent state per lane: all lanes at the start of every epoch, and before each batch
    only the lanes that start a new series there.

    Parameters
    ----------
    data : Arranged or StatefulDataset
        The training (or, for a standalone ``evaluate``/``predict``, the evaluated) arrangement.
    validation_data : Arranged or StatefulDataset, optional
        The arrangement used as ``validation_data`` in ``fit``. Training state is saved before
        validation and restored after it. A validation tail from :meth:`Arranged.split`
        (``continues=True``) starts from the training state; otherwise validation starts from zero.
    reset_on_epoch_begin : bool
        Zero all lanes at the start of every epoch (default). With ``False`` state also flows from
        the end of one epoch into the next.
    """

    def __init__(self, data: Any, validation_data: Any = None, *, reset_on_epoch_begin: bool = True):
        super().__init__()
        self._train_resets, self._train_continues, self.batch_size = _resets_of(data)
        self._val_resets, self._val_continues = None, False
        if validation_data is not None:
            self._val_resets, self._val_continues, vb = _resets_of(validation_data)
            if vb != self.batch_size:
                raise BatchSizeError(
                    f"validation data is arranged with batch_size={vb} but training data with {self.batch_size}; "
                    "a stateful model has one fixed batch size.",
                    f"arrange the validation series with batch_size={self.batch_size}.")
        self.reset_on_epoch_begin = reset_on_epoch_begin
        self._layers: list[Any] = []
        self._in_fit = False
        self._saved: list[np.ndarray] | None = None
        self.resets_done = 0  # lanes zeroed mid-epoch (for inspection/tests)

    # -- helpers
    def _find_layers(self) -> None:
        self._layers = stateful_layers(self.model)
        if not self._layers:
            raise StatefulLayoutError("the model has no stateful recurrent layer to reset.",
                                      "build the RNN layers with stateful=True, or drop LaneResetCallback.")
        for layer in self._layers:
            for v in _introspect.state_variables(layer):
                if int(v.shape[0]) != self.batch_size:
                    raise BatchSizeError(
                        f"layer {layer.name!r} keeps {int(v.shape[0])} parallel states but the data has "
                        f"{self.batch_size} lanes.",
                        f"build the model with keras.Input(batch_shape=({self.batch_size}, T, F)).")
        spe = getattr(self.model, "steps_per_execution", 1)
        spe = int(getattr(spe, "numpy", lambda: spe)()) if not isinstance(spe, int) else spe
        if spe != 1 and self._train_resets[1:].any():
            raise ParameterError(
                f"steps_per_execution={spe}: Keras calls batch callbacks once per {spe} batches, so lanes "
                "cannot be reset before the right batch.", "compile the model with steps_per_execution=1.")

    def _reset_before(self, resets: np.ndarray | None, batch: int, continues: bool) -> None:
        if resets is None or batch >= len(resets):
            return
        rows = resets[batch]
        if (batch == 0 and not continues) or not rows.any():
            return  # batch 0 of an arrangement follows the epoch's (or evaluation's) full reset
        reset_rows(self._layers, np.flatnonzero(rows))
        self.resets_done += int(rows.sum())

    # -- fit
    def on_train_begin(self, logs=None):
        self._in_fit = True
        self._find_layers()

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        if self.reset_on_epoch_begin or epoch == 0:
            reset_rows(self._layers)

    def on_train_batch_begin(self, batch, logs=None):
        self._reset_before(self._train_resets, batch, self._train_continues)

    # -- evaluate (also validation inside fit)
    def on_test_begin(self, logs=None):
        if not self._layers:
            self._find_layers()
        if self._in_fit:
            if self._val_resets is None:
                raise ParameterError(
                    "fit runs validation on the stateful model, but LaneResetCallback was not given the "
                    "validation arrangement, so it cannot reset its lanes or keep its state apart.",
                    "pass LaneResetCallback(train, validation_data=val) (or use statebatch.keras.fit_stateful).")
            self._saved = _state_snapshot(self._layers)
            if not self._val_continues:
                reset_rows(self._layers)
        else:
            reset_rows(self._layers)

    def on_test_batch_begin(self, batch, logs=None):
        if self._in_fit:
            self._reset_before(self._val_resets, batch, self._val_continues)
        else:  # a standalone evaluate of `data`, from zero state
            self._reset_before(self._train_resets, batch, False)

    def on_test_end(self, logs=None):
        if self._in_fit and self._saved is not None:
            _state_restore(self._layers, self._saved)
            self._saved = None

    # -- predict
    def on_predict_begin(self, logs=None):
        self._find_layers()
        reset_rows(self._layers)

    def on_predict_batch_begin(self, batch, logs=None):
        self._reset_before(self._train_resets, batch, False)


def check_model(model: Any, arranged: Arranged) -> None:
    """Fail early when ``model`` cannot run ``arranged`` statefully (batch size, timesteps, features)."""
    from .validate import validate

    if not stateful_layers(model):
        raise StatefulLayoutError("the model has no stateful recurrent layer.",
                                  "build the RNN layers with stateful=True and "
                                  f"keras.Input(batch_shape={arranged.batch_shape}).")
    shape = _introspect.input_shape(model)
    if shape is not None and shape[1] is not None and shape[1] != arranged.timesteps:
        raise ModelMismatchError(
            f"the model expects {shape[1]} timesteps but the lanes are cut into chunks of {arranged.timesteps}.",
            f"arrange with timesteps={shape[1]} or build the model with keras.Input(batch_shape="
            f"({arranged.batch_size}, None, {arranged.n_features})).")
    first = arranged.batch(0)
    validate(first[0], first[1] if len(first) > 1 else None, model=model, batch_size=arranged.batch_size,
             stateful=True, shuffle=False, emit_warnings=False)


def fit_stateful(model: Any, train: Arranged | StatefulDataset, *, epochs: int = 1,
                 validation: Arranged | StatefulDataset | None = None,
                 callbacks: list | None = None, reset_on_epoch_begin: bool = True, **fit_kwargs):
    """``model.fit`` on arranged lanes, done right: validated first, in order, with lane resets.

    On the TensorFlow backend the batches go through :meth:`StatefulDataset.to_tf_dataset` (static
    batch size, needed for ``batch_size=1``); elsewhere through the PyDataset. Returns ``History``.
    """
    train_arr = train.arranged if isinstance(train, StatefulDataset) else train
    val_arr = validation.arranged if isinstance(validation, StatefulDataset) else validation
    if fit_kwargs.get("shuffle", False):
        raise ShuffleError("shuffle=True scrambles lanes of a stateful model.", "leave shuffle out (False).")
    fit_kwargs.pop("shuffle", None)
    check_model(model, train_arr)
    if val_arr is not None and val_arr.batch_size != train_arr.batch_size:
        raise BatchSizeError(f"validation lanes ({val_arr.batch_size}) differ from training lanes "
                             f"({train_arr.batch_size}).", "arrange both with the same batch_size.")
    cb = LaneResetCallback(train_arr, val_arr, reset_on_epoch_begin=reset_on_epoch_begin)

    def feed(arranged):
        if isinstance(arranged, StatefulDataset):
            ds = arranged
        else:
            import warnings

            with warnings.catch_warnings():  # the batch_size=1 warning: handled right here
                warnings.simplefilter("ignore")
                ds = StatefulDataset(arranged)
        return ds.to_tf_dataset() if keras.backend.backend() == "tensorflow" else ds

    return model.fit(feed(train), epochs=epochs, shuffle=False,
                     validation_data=None if validation is None else feed(validation),
                     callbacks=[cb] + list(callbacks or []), **fit_kwargs)


class BucketDataset(keras.utils.PyDataset):
    """A :class:`~statebatch.bucketing.Bucketing` as a Keras ``PyDataset``: one epoch per pass,
    re-bucketed and reshuffled in ``on_epoch_end``.

    Each batch is ``(X[, y[, sample_weight]])`` padded to its longest member; use a model built with
    ``keras.Input(shape=(None, features))`` and a ``Masking`` layer or the per-timestep weights.
    With a token budget the batch count would change between epochs, which Keras does not allow
    within one ``fit``; then membership stays fixed and only the batch order is reshuffled.
    """

    def __init__(self, bucketing: Any, **kwargs):
        super().__init__(**kwargs)
        self.bucketing = bucketing
        self._first = bucketing.plan(bucketing.epoch)
        self._plan = self._first

    def __len__(self) -> int:
        return len(self._plan)

    def __getitem__(self, k: int):
        if not 0 <= k < len(self._plan):
            raise IndexError(k)
        return self.bucketing.materialise(self._plan[k]).as_tuple()

    def on_epoch_end(self) -> None:
        b = self.bucketing
        b.epoch += 1
        if b.token_budget is None:
            self._plan = b.plan(b.epoch)
        else:
            order = np.random.default_rng(None if b.seed is None else (b.seed, b.epoch)).permutation(len(self._first))
            self._plan = [self._first[i] for i in order]


def to_tf_dataset(bucketing: Any):
    """Export a bucketing as a ``tf.data.Dataset`` of padded batches (one epoch per iteration).

    ``element_spec`` is ``(X, [y, [sample_weight]])`` with X ``(None, None, features)``: batch and
    length vary from batch to batch. Every pass over the dataset re-plans (reshuffles) the epoch.
    """
    import tensorflow as tf

    first = bucketing.materialise(bucketing.plan(bucketing.epoch)[0]).as_tuple()
    spec = [tf.TensorSpec(shape=(None, None) + first[0].shape[2:], dtype=tf.as_dtype(first[0].dtype))]
    if len(first) > 1:
        y = first[1]
        yshape = (None, None) + y.shape[2:] if bucketing._per_step else (None,) + y.shape[1:]
        spec.append(tf.TensorSpec(shape=yshape, dtype=tf.as_dtype(y.dtype)))
    if len(first) > 2:
        spec.append(tf.TensorSpec(shape=(None, None), dtype=tf.float32))

    def epoch():
        yield from iter(bucketing)

    return tf.data.Dataset.from_generator(epoch, output_signature=tuple(spec))
