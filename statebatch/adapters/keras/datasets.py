"""statebatch results as Keras ``PyDataset``s: windows, arranged lanes (in order), buckets, and batch shards.

Each dataset serves ``result.batch(k)`` as item ``k`` and moves the result to its next epoch in
``on_epoch_end``. Arranged lanes refuse out-of-order requests (``fit(shuffle=True)``, the default,
permutes a finite PyDataset's batch indices every epoch: KERAS_FACTS.md).
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from ..._args import check_choice, check_int
from ...errors import BatchIndexError, LengthMismatchError, ParameterError, StatebatchWarning, StatefulLayoutError
from ...results.batched import Batched
from ...results.bucketing import Bucketing
from ...results.schedule import InOrderGuard
from ...results.stateful import Arranged
from ...results.windows import Windows
from .backends import needs_static_batch_feed
from .losses import STEP_WEIGHTS, epoch_mean_weights, epoch_steps_per_sequence
from .loop_errors import _recorded

__all__ = ["Dataset", "WindowDataset", "StatefulDataset", "BucketDataset", "ShardDataset", "keras_item"]


def _batch_index(k: Any, n: int) -> int:
    """A batch index of a dataset with ``n`` batches (a statebatch error that is also an IndexError)."""
    k = check_int("batch index", k)
    if not 0 <= k < n:
        raise BatchIndexError(f"batch {k} is outside 0..{n - 1} ({n} batches per epoch).",
                              "ask for batches 0 .. len(dataset) - 1.")
    return k


def keras_item(batch: Any, model: Any = None) -> Any:
    """A batch as Keras takes it: plain ``(X, y[, sample_weight])`` as it is; a mapping (forecasting windows,
    lanes with covariates) as ``(inputs, y[, sample_weight])``, ``(inputs,)`` without targets, the inputs by
    the model's input names (:func:`~statebatch.split_xy`; ``model=None``: the input keys present).

    Examples
    --------
    >>> import numpy as np
    >>> x, y, w = keras_item({"past": np.zeros((2, 3, 1)), "static": np.ones((2, 1)), "y": np.zeros((2, 3, 1)),
    ...                       "sample_weight": np.ones((2, 3))})
    >>> sorted(x), y.shape, w.shape
    (['past', 'static'], (2, 3, 1), (2, 3))
    """
    if not isinstance(batch, dict):
        return batch
    if "y" not in batch:  # lanes with static covariates only and no targets (predict)
        from ...results.lane_covariates import lane_inputs

        x = lane_inputs(batch, model)
        return (tuple(x) if isinstance(x, list) else x,)
    from ...materialise.forecast import split_xy

    x, y = split_xy(batch, model=model)  # by the model's input names
    x = tuple(x) if isinstance(x, list) else x  # tf.data's signatures take tuples, not lists
    return (x, y, batch["sample_weight"]) if "sample_weight" in batch else (x, y)  # lanes: with weights


class Dataset(keras.utils.PyDataset):
    """Any statebatch result as a Keras ``PyDataset``: ``len`` = batches per epoch, item ``k`` =
    ``result.batch(k)``, and the result moves to its next epoch (reshuffled or re-planned) in
    ``on_epoch_end``. Arrangements (stateful lanes) refuse out-of-order requests.

    Parameters
    ----------
    result : Windows, Arranged or Bucketing
    **kwargs : passed to ``keras.utils.PyDataset`` (``workers``, ``use_multiprocessing``, ``max_queue_size``).
    """

    def __init__(self, result: Batched, **kwargs):
        if not isinstance(result, Batched):
            raise ParameterError(f"{type(self).__name__} needs a statebatch result, got {type(result).__name__}.",
                                 "build one with statebatch.make_windows, arrange_stateful or bucket_batches.")
        workers = check_int("workers", kwargs.get("workers", 1), 1)
        if kwargs.get("use_multiprocessing", False) and hasattr(result, "resets"):
            raise ParameterError("stateful batches cannot be served by several processes: each process would keep "
                                 "its own copy of the in-order guard.", "drop use_multiprocessing (threads are fine).")
        super().__init__(**kwargs)
        self.result = self.resets_source = result  # schedule.resets_of follows resets_source to the lanes
        # Keras' OrderedEnqueuer keeps up to max_queue_size batches in flight across `workers` threads
        self._guard = (InOrderGuard(workers=workers, lookahead=check_int("max_queue_size", kwargs.get("max_queue_size", 10), 1))
                       if hasattr(result, "resets") else None)
        self._n = result.n_batches
        self._start = 0  # load_state_dict: this pass serves batches _start.. of the epoch's plan
        self._next = 0   # the batch after the last one served

    def __len__(self) -> int:
        return self._n - self._start

    def _index(self, k: Any) -> int:
        """Item ``k`` of this pass as a batch index of the epoch's plan."""
        return _batch_index(k, len(self)) + self._start

    @_recorded
    def __getitem__(self, k: int):
        i = _batch_index(k, len(self))
        if self._guard is not None:
            self._guard.check(i)
        k = i + self._start
        self._next = k + 1
        return keras_item(self.result.batch(k), getattr(self, "_input_model", None))

    # -- resuming (the torchdata StatefulDataLoader names, as statebatch.torch's loader)
    def state_dict(self) -> dict[str, Any]:
        """Where this dataset stands: ``{"epoch": e, "batch": k, "n_batches": n, "seed": s}``, ``k`` the
        batch of epoch ``e``'s plan after the last one served. The plan is a pure function of the seed
        and the epoch, so this is the whole state. Inside a Keras loop batches are fetched ahead of
        training (``max_queue_size``); :func:`fit_stateful` records the trained batch itself."""
        return {"epoch": int(self.result.epoch), "batch": int(self._next), "n_batches": int(self._n),
                "seed": getattr(self.result, "seed", None)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue at ``state`` (from :meth:`state_dict`): this pass serves batches ``k .. n-1`` of
        epoch ``e`` (``len`` is ``n - k``); the next pass serves the whole epoch ``e + 1``.

        Raises :class:`~statebatch.errors.ParameterError` for a malformed state, a batch outside the
        epoch, or a state saved with another seed or batch count.
        """
        if not isinstance(state, dict) or not {"epoch", "batch"} <= set(state):
            raise ParameterError(f"a dataset state is a dict with 'epoch' and 'batch', got {state!r}.",
                                 "pass what dataset.state_dict() returned.")
        epoch, batch = check_int("epoch", state["epoch"], 0), check_int("batch", state["batch"], 0)
        seed = getattr(self.result, "seed", None)
        if "seed" in state and state["seed"] != seed:
            raise ParameterError(f"the state was saved with seed {state['seed']!r}, this dataset's seed is {seed!r}: "
                                 "its epochs would serve other batches.", "build the result with the same seed.")
        n = self.result.plan(epoch).n_batches
        if "n_batches" in state and check_int("n_batches", state["n_batches"], 0) != n:
            raise ParameterError(f"the state was saved for {state['n_batches']} batches per epoch, this dataset has {n} "
                                 f"in epoch {epoch}.", "load the state into a dataset of the same data and arrangement.")
        if batch > n:
            raise ParameterError(f"batch {batch} is beyond the {n} batches of epoch {epoch}.",
                                 "pass what dataset.state_dict() returned.")
        if batch == n:  # the epoch was complete
            epoch, batch = epoch + 1, 0
        self.result.set_epoch(epoch)
        self._on_set_epoch()
        self._start = self._next = batch
        if self._guard is not None:
            self._guard.reset()

    def _on_set_epoch(self) -> None:
        self._n = self.result.n_batches

    def _resume_pending(self) -> bool:
        """A state was loaded and nothing served since: Keras calls ``on_epoch_end`` when it resets its epoch
        iterator before training (JAX, torch), which must not drop the loaded position."""
        return self._start > 0 and self._next == self._start

    def on_epoch_end(self) -> None:
        if self._resume_pending():
            return
        self._start = self._next = 0
        if self._guard is not None:
            self._guard.reset()
        self.result.set_epoch(self.result.epoch + 1)
        n = self.result.n_batches
        if n != self._n:  # a re-planned epoch with another batch count
            self._n = n


class WindowDataset(Dataset):
    """Windows from :func:`~statebatch.make_windows` as a Keras ``PyDataset`` (non-stateful models).

    Batching (``batch_size``, ``shuffle``, ``seed``, ``remainder``) is the windows' own; the window
    order is reshuffled every epoch when ``shuffle``. The fast replacement for
    ``keras.utils.timeseries_dataset_from_array`` inside ``fit``. Forecasting windows serve
    ``(inputs, y)`` (:func:`statebatch.split_xy`): with ``model=``, exactly the model's inputs
    by name (checked here); without, the model-input keys ``past``, ``future``, ``static``, ``mask``.
    """

    def __init__(self, windows: Windows, *, model: Any = None, **kwargs: Any):
        if not isinstance(windows, Windows):
            raise ParameterError(f"WindowDataset needs statebatch Windows, got {type(windows).__name__}.",
                                 "build them with statebatch.make_windows(...).")
        if model is not None:  # refused now, not at the first batch inside fit
            from ...materialise.forecast import model_inputs

            if windows.forecast is None:
                raise ParameterError("model= matches forecasting inputs by name; these windows serve (X, y).",
                                     "drop model=, or build forecasting windows (known_cols=..., scale=...).")
            model_inputs(model, windows.forecast.keys, empty=windows.forecast.empty_keys)
        self._input_model = model
        super().__init__(windows, **kwargs)

    result: Windows  # what this dataset serves (Dataset keeps any Batched result)

    @property
    def windows(self) -> Windows:
        return self.result


#: StatefulDataset materialises an in-memory epoch of at most this many bytes (X and y) and serves its
#: batches as views: as cheap per batch as slicing arrays. Larger epochs are gathered batch by batch.
_EPOCH_CACHE_BYTES = 256 << 20


def _resets_by(resets_by: str, resets: str | None) -> str:
    """The reset mode, from ``resets_by`` or the deprecated ``resets`` (removed in 0.4, CHANGELOG.md).

    Why renamed: ``.resets`` of the same dataset is the array of lanes each batch resets, not the mode.
    """
    if resets is None:
        return resets_by
    if resets_by != "callback":
        raise ParameterError("StatefulDataset got both resets_by= and the deprecated resets=.",
                             "pass resets_by= only.")
    warnings.warn("StatefulDataset(resets=...) is renamed resets_by= (.resets is the array of lane resets); "
                  "resets= is accepted until 0.4.", FutureWarning, stacklevel=3)
    return resets


class StatefulDataset(Dataset):
    """Arranged lanes as a Keras ``PyDataset`` that yields batches strictly in order.

    Batch ``k`` is ``(X_k, y_k, sample_weight_k)`` (``(X_k,)`` without targets), each ``batch_size``
    rows, row ``i`` continuing row ``i`` of batch ``k-1``. Use with ``fit(..., shuffle=False)``,
    ``evaluate`` and ``predict``, together with :class:`LaneResetCallback`. A request out of order
    (``fit`` shuffles a PyDataset's batches unless ``shuffle=False``) raises
    :class:`~statebatch.errors.ShuffleError` instead of training on scrambled lanes.

    An in-memory epoch of at most 256 MB (X and y) is materialised when its first batch is asked for
    and its batches are served as read-only views (the arrangement keeps it, as ``arranged.X`` does);
    a larger or out-of-core one is read batch by batch.

    Lanes with covariates (``arrange_stateful(static_cols=..., known_cols=...)``) serve
    ``(inputs, y, sample_weight)``: with ``model=``, exactly the model's inputs by name (checked here;
    :func:`fit_stateful` and :func:`predict` pass their model); without, the keys ``past``, ``future``,
    ``static`` present.

    Parameters
    ----------
    arranged : Arranged
    resets_by : "callback" or "manual"
        Who resets the lanes that start a new series: a :class:`LaneResetCallback` (default; a batch
        with such lanes raises :class:`~statebatch.errors.StatefulLayoutError` when none is active),
        or the caller. (``resets=`` is the deprecated name of this parameter.)
    model : keras.Model, optional
        Lanes with covariates: the model whose named inputs get the batch keys of their names.
    **kwargs : passed to ``keras.utils.PyDataset``.
    """

    def __init__(self, arranged: Arranged, *, resets_by: str = "callback", resets: str | None = None,
                 model: Any = None, **kwargs: Any):
        if not isinstance(arranged, Arranged):
            raise ParameterError(f"StatefulDataset needs an Arranged result, got {type(arranged).__name__}.",
                                 "build it with statebatch.arrange_stateful(...).")
        if model is not None:  # lanes with covariates: the model's inputs by name, checked now
            from ...materialise.forecast import model_inputs

            if arranged.covariates is None:
                raise ParameterError("model= matches covariate inputs by name; these lanes serve (X, y, sample_weight).",
                                     "drop model=, or arrange with static_cols=/known_cols=.")
            model_inputs(model, arranged.covariates.keys(arranged.has_targets))
        self._input_model = model
        # "callback": a LaneResetCallback must be active when a batch starts new series in some lanes,
        # or the state of one series would leak into the next; "manual": the caller resets them.
        self.resets_by = check_choice("resets_by", _resets_by(resets_by, resets), ("callback", "manual"))
        super().__init__(arranged, **kwargs)
        if arranged.batch_size == 1 and needs_static_batch_feed():
            warnings.warn(
                "batch_size=1: Keras' PyDataset adapter gives the TensorFlow backend an unknown batch size, which a "
                "stateful RNN with one lane rejects in fit ('enters the loop with shape (1, units)'). Use "
                "statebatch.keras.fit_stateful, statebatch.keras.to_tf_dataset(arranged), or arranged.fit_kwargs().",
                StatebatchWarning, stacklevel=2)

    result: Arranged

    @property
    def arranged(self) -> Arranged:
        return self.result

    @_recorded
    def __getitem__(self, k: int):
        if k == 0:  # a small in-memory epoch is materialised once and served as views (no gather per batch)
            self.result._cache_epoch(_EPOCH_CACHE_BYTES)
        out = super().__getitem__(k)
        k = int(k) + self._start  # the batch of the epoch's plan (after load_state_dict, item 0 is batch _start)
        if (self.resets_by == "callback" and k > 0 and self.result.__dict__.get("_resetting") is None
                and np.asarray(self.result.resets[k]).any()):
            lanes = np.flatnonzero(self.result.resets[k])[:5].tolist()
            raise StatefulLayoutError(
                f"batch {k} starts new series in lanes {lanes}, but no LaneResetCallback is resetting them: the state "
                "of the previous series in those lanes would flow into the new ones.",
                "pass callbacks=[statebatch.keras.LaneResetCallback(arranged)] to fit/predict/evaluate (or use "
                "statebatch.keras.fit_stateful); StatefulDataset(arranged, resets_by='manual') if you reset them yourself.")
        return out

    @property
    def batch_size(self) -> int:
        return self.result.batch_size

    @property
    def resets(self) -> np.ndarray:
        return self.result.resets


def _spec_safe_order(sizes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A batch order whose first two batches differ in every dimension that varies at all.

    Keras' PyDataset adapter on TensorFlow infers the element spec from batches 0 and 1 only (whatever
    order ``fit`` later draws): a size both share becomes static, and any later batch of another size
    fails ("generator yielded an element of shape (64, 75, 1) where (None, 50, 1) was expected").
    Such a pair always exists (if every pair shared a size or a length, one of them would be constant).
    The other batches keep their order.
    """
    n = len(sizes)
    order = np.arange(n)
    varies = [v for v in (sizes, lengths) if n and (v != v[0]).any()]
    if n < 3 or not varies:
        return order
    for a in range(n):
        ok = np.ones(n, bool)
        for v in varies:
            ok &= v != v[a]
        hits = np.flatnonzero(ok)
        if hits.size:
            b = int(hits[0])
            rest = order[(order != a) & (order != b)]
            return np.concatenate([[a, b], rest])
    return order  # unreachable (see above)


class BucketDataset(Dataset):
    """A :class:`~statebatch.Bucketing` as a Keras ``PyDataset``: one epoch per pass, re-bucketed and
    reshuffled in ``on_epoch_end``.

    Each batch is ``(X[, y[, sample_weight]])`` padded to its longest member; use a model built with
    ``keras.Input(shape=(None, features))`` and a ``Masking`` layer or the per-timestep weights.
    Item ``k`` is batch ``order[k]`` of the epoch's plan: the first two items differ in length (and in
    size, where sizes vary), because Keras on TensorFlow derives the shapes it accepts from them. For
    per-step predictions (which Keras cannot concatenate across lengths on JAX and torch) use
    :func:`predict`, which returns them per sequence in the original order.
    With a token budget the batch count would change between epochs, which Keras does not allow
    within one ``fit``; then membership stays that of the first epoch and only the order changes.

    Per-step targets: the sample weights are 0 on padding and, on the real steps of a batch of ``n_k``
    sequences padded to ``T_k`` steps, ``T_k * N / R`` (``N`` sequences and ``R`` real steps in the
    epoch). Keras averages batch figures in two ways, both of which these weights make the exact mean
    over the epoch's real steps: the loss shown is the mean of the batch losses weighted by
    ``n_k``, and a weighted metric sums ``sum_t(w * value) / T_k`` and ``sum_t(w) / T_k`` per sequence.
    The loss is exact with :class:`RealStepLoss` (any model) or with Keras' default reduction on an
    output without a Keras mask; ``"mean_with_sample_weight"`` and masked outputs (a ``Masking`` layer)
    give batch means, see :func:`check_real_step_loss`. ``step_weights="unit"`` serves plain 1/0.

    Parameters
    ----------
    bucketing : Bucketing
    epoch : int, optional
        Serve this epoch's plan on every pass, never moving to the next (evaluation: the same batches on
        every ``evaluate`` call). Default: the bucketing's current epoch, re-bucketed after each pass.
    step_weights : "epoch_mean" or "unit"
        The per-step sample weights described above (default), or 1 on real steps and 0 on padding.
    **kwargs : passed to ``keras.utils.PyDataset``.
    """

    def __init__(self, bucketing: Bucketing, *, epoch: int | None = None, step_weights: str = "epoch_mean", **kwargs):
        if not isinstance(bucketing, Bucketing):
            raise ParameterError(f"BucketDataset needs a statebatch Bucketing, got {type(bucketing).__name__}.",
                                 "build it with statebatch.bucket_batches(...).")
        self.fixed_epoch = None if epoch is None else check_int("epoch", epoch, 0)
        self.step_weights = check_choice("step_weights", step_weights, STEP_WEIGHTS)
        super().__init__(bucketing, **kwargs)
        self._first = bucketing.plan(self.fixed_epoch)
        self._shuffle_budget = np.arange(self._first.n_batches)
        self._plan_order()

    result: Bucketing

    @property
    def bucketing(self) -> Bucketing:
        return self.result

    def _epoch(self) -> int:
        return self.result.epoch if self.fixed_epoch is None else self.fixed_epoch

    def _plan(self):
        return self._first if self.result.token_budget is not None else self.result.plan(self._epoch())

    def _plan_order(self) -> None:
        plan = self._plan()
        base = self._shuffle_budget if self.result.token_budget is not None else np.arange(plan.n_batches)
        sizes = np.array([len(plan.batches[j]) for j in base])
        lengths = np.asarray(plan.padded_lengths)[base]
        self.order = base[_spec_safe_order(sizes, lengths)]
        self._n = len(self.order)
        # Every batch of this epoch has one length, but other epochs' batches may not (the sequences'
        # lengths vary): Keras on TensorFlow would take that length as static from items 0 and 1 and
        # fail at a later epoch's batch. Item 1 gets one more padded step (weight 0) so that the
        # time axis stays free; padded steps change no real step's output or loss.
        self._widen = (len(lengths) > 1 and (lengths == lengths[0]).all()
                       and int(np.min(self.result.lengths)) != int(np.max(self.result.lengths)))
        self._per_step = (epoch_steps_per_sequence(plan) if self.step_weights == "epoch_mean"
                          and self.result._tsource is not None else None)

    @_recorded
    def __getitem__(self, k: int):
        k = self._index(k)
        self._next = k + 1
        j = int(self.order[k])
        b = self.result
        self._served = (self.order, self._first.epoch if b.token_budget is not None else self._epoch())
        if b.token_budget is None:
            out = b.batch(j, self._epoch())
        else:
            out = b.materialise(self._first.batches[j], int(self._first.padded_lengths[j])).as_tuple()
        if self._widen and k == 1:
            out = self._one_more_step(out)
        if self._per_step is not None and len(out) == 3:
            out = out[:2] + (epoch_mean_weights(out[2], self._per_step),)
        return out

    def _one_more_step(self, out: tuple) -> tuple:
        """The batch with one more padded step on its time axis (at the end, or at the start with
        ``padding="pre"``): X, per-step targets and per-step weights (0 there)."""
        b = self.result
        per_step = [True, bool(b.return_sequences), len(out) > 2 and np.ndim(out[2]) == 2]
        widened = []
        for a, timed in zip(out, per_step):
            if timed:
                pad = np.full((a.shape[0], 1) + a.shape[2:], 0 if a is out[-1] and len(out) > 2 else b.pad_value,
                              dtype=a.dtype)
                a = np.concatenate([pad, a] if b.padding == "pre" else [a, pad], axis=1)
            widened.append(a)
        return tuple(widened)

    def unbatch(self, outputs: Any):
        """Outputs of this epoch's items (a list, one array per item, in item order) per sequence, in
        the original order: see :meth:`statebatch.Bucketing.unbatch`."""
        order, epoch = getattr(self, "_served", (self.order, self._epoch()))  # the epoch last served
        if not isinstance(outputs, (list, tuple)) or len(outputs) != len(order):
            got = f"a list of {len(outputs)}" if isinstance(outputs, (list, tuple)) else type(outputs).__name__
            raise LengthMismatchError(f"outputs must be a list with one array per item ({len(order)}), got {got}.",
                                      "collect model.predict_on_batch(dataset[k][0]) for k in range(len(dataset)), "
                                      "or use statebatch.keras.predict(model, dataset).")
        in_plan = [None] * len(outputs)
        for k, j in enumerate(order):
            in_plan[int(j)] = outputs[k]
        return self.result.unbatch(in_plan, epoch=epoch)

    def on_epoch_end(self) -> None:
        if self.fixed_epoch is not None:  # evaluation: the same plan on every pass
            return
        if self._resume_pending():
            return
        self._start = self._next = 0
        b = self.result
        b.set_epoch(b.epoch + 1)
        self._on_set_epoch()

    def _on_set_epoch(self) -> None:
        # the item order of an epoch is a pure function of the seed and the epoch (load_state_dict relies on it)
        b = self.result
        if b.token_budget is not None:
            self._shuffle_budget = (np.arange(self._first.n_batches) if b.epoch == self._first.epoch else
                                    np.random.default_rng((b.seed, b.epoch, 7)).permutation(self._first.n_batches))
        self._plan_order()


class ShardDataset(keras.utils.PyDataset):
    """Batches written by :func:`statebatch.store.write_batches`, read back one at a time, in order.

    For arranged lanes, out-of-order requests raise :class:`~statebatch.errors.ShuffleError` as in
    :class:`StatefulDataset` (pass ``shuffle=False``); windows may be shuffled by ``fit``.
    """

    def __init__(self, shards: Any, **kwargs):
        from ...sources.npy import BatchShards

        workers = check_int("workers", kwargs.get("workers", 1), 1)
        super().__init__(**kwargs)
        self.shards = self.resets_source = shards if isinstance(shards, BatchShards) else BatchShards(shards)
        self._guard = (InOrderGuard(workers=workers, lookahead=check_int("max_queue_size", kwargs.get("max_queue_size", 10), 1))
                       if self.shards.resets is not None else None)

    @property
    def batch_size(self) -> int:
        return self.shards.batch_size

    def __len__(self) -> int:
        return len(self.shards)

    @_recorded
    def __getitem__(self, k: int):
        k = _batch_index(k, len(self.shards))
        if self._guard is not None:
            self._guard.check(k)
        return self.shards.batch(k)

    def on_epoch_end(self) -> None:
        if self._guard is not None:
            self._guard.reset()

