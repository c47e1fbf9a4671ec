"""Bucketing for ``torch.utils.data``: :class:`BucketBatchSampler`, :class:`SequenceDataset` and
:func:`pad_collate` (lengths for ``pack_padded_sequence``, masks)."""

from __future__ import annotations

import numbers
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from ..._args import check_bool, check_int, resolve_seed
from ...errors import DTypeError, LengthMismatchError, ParameterError, ShapeError
from ...plans.base import check_lengths
from ...plans.buckets import BucketPlan, bucket_boundaries, plan_buckets
from ...results.bucketing import Bucketing
from .checkpoints import _crc, _ResumableBatches
from .distributed import _distributed, _ranks_agree, even_batches
from .tensors import _positions, to_tensor


class BucketBatchSampler(_ResumableBatches, torch.utils.data.Sampler):
    """Bucketed batches of sequence indices for ``DataLoader(dataset, batch_sampler=..., collate_fn=...)``.

    The batches are those of statebatch's bucket plan (sequences of similar length, reshuffled per
    epoch as a pure function of ``seed`` and the epoch). Call ``set_epoch(epoch)`` at the start of
    every epoch to reshuffle (the ``DistributedSampler`` convention; without it every epoch repeats
    the same batches).

    Distributed data parallel: with ``num_replicas`` ranks, every rank plans the same epoch (the same
    seed on every rank, checked across an initialised process group) and takes every
    ``num_replicas``-th batch from its ``rank``; when the batch count does not divide, the largest
    batches are split in two first, so every rank gets the same number of distinct batches and every
    sequence is in exactly one of them each epoch (nothing is repeated or dropped).

    Parameters
    ----------
    data : Bucketing or sequence of int
        A :func:`statebatch.bucket_batches` result (its batch size, mode, seed...), or the sequences'
        lengths, planned with ``batch_size`` and ``**plan_kwargs`` of
        :func:`statebatch.plan_buckets`.
    batch_size : int
        With lengths only.
    num_replicas, rank : int, optional
        Default: the initialised process group's world size and rank, else 1 and 0.
    seed : int, optional
        With lengths only; required when ``num_replicas > 1`` (each rank would draw its own).
    """

    def __init__(self, data: Any, batch_size: int | None = None, *, num_replicas: int | None = None,
                 rank: int | None = None, seed: int | None = None, **plan_kwargs):
        group = _distributed()
        self.num_replicas = check_int("num_replicas", group[0] if num_replicas is None and group else
                                      (1 if num_replicas is None else num_replicas), 1)
        self.rank = check_int("rank", group[1] if rank is None and group else (0 if rank is None else rank), 0)
        if self.rank >= self.num_replicas:
            raise ParameterError(f"rank={self.rank} is outside 0..{self.num_replicas - 1} (num_replicas="
                                 f"{self.num_replicas}).", "pass a rank below num_replicas.")
        if isinstance(data, Bucketing):
            if batch_size is not None or seed is not None or plan_kwargs:
                raise ParameterError("batch_size, seed and planning options belong to the Bucketing when one is given.",
                                     "pass them to statebatch.bucket_batches, or give lengths instead.")
            self.bucketing: Bucketing | None = data
            self.batch_size = data.batch_size
            self.seed = data.seed
            self.lengths = np.asarray(data.lengths)
        else:
            self.bucketing = None
            if batch_size is None:
                raise ParameterError("batch_size is needed when the sampler is given lengths.",
                                     "pass batch_size=..., or a statebatch.bucket_batches(...) result.")
            if seed is None and self.num_replicas > 1:
                raise ParameterError(
                    f"num_replicas={self.num_replicas} without a seed: each rank would draw its own and plan "
                    "different batches, so sequences would repeat on some ranks and be missed on others.",
                    "pass the same seed=... on every rank.")
            self.batch_size = check_int("batch_size", batch_size, 1)
            self.seed = resolve_seed(seed)
            self.lengths = check_lengths(data)
            self._kwargs = dict(plan_kwargs)
            if self._kwargs.get("mode") == "buckets" and self._kwargs.get("boundaries") is None:
                # as bucket_batches does: boundaries that minimise padding (n_buckets of them, or chosen)
                self._kwargs["boundaries"] = bucket_boundaries(self.lengths,
                                                               self._kwargs.pop("n_buckets", None))
            self._plan_of(0)  # errors in the options surface here
        self.epoch = 0
        if group and self.num_replicas > 1:
            self._check_ranks_agree()

    def _plan_of(self, epoch: int) -> BucketPlan:
        if self.bucketing is not None:
            return self.bucketing.plan(epoch)
        try:
            return plan_buckets(self.lengths, self.batch_size,
                                seed=self.seed, epoch=epoch, **self._kwargs)
        except TypeError as e:
            raise ParameterError(f"unknown planning option ({e}).",
                                 "pass options of statebatch.plan_buckets (mode, bin_width, shuffle, ...).") from None

    def _check_ranks_agree(self) -> None:
        plan = self._plan_of(0)
        import hashlib

        digest = hashlib.sha1()  # not hash(): Python salts it per process
        for b in plan.batches:
            digest.update(np.asarray(b, dtype=np.int64).tobytes() + b"|")
        _ranks_agree((len(self.lengths), int(self.lengths.sum()), self.batch_size, digest.hexdigest()),
                     "the ranks of this process group planned different batches (different seeds, lengths or options), "
                     "so sequences would repeat on some ranks and be missed on others.",
                     "build the sampler (or the Bucketing) with the same data, options and an explicit seed on every "
                     "rank.")

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` (default: the current one), as index arrays."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        return even_batches(self._plan_of(epoch), self.num_replicas)[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        return self._served(self.batches(), lambda b: b.tolist())

    _epoch_batches = batches

    def _identity(self) -> dict[str, Any]:
        kwargs = {} if self.bucketing is not None else {k: repr(v) for k, v in sorted(self._kwargs.items())}
        return {"n_sequences": int(len(self.lengths)), "lengths_crc32": _crc(self.lengths),
                "batch_size": int(self.batch_size), "seed": int(self.seed), "num_replicas": self.num_replicas,
                "rank": self.rank, "options": kwargs if self.bucketing is None else {
                    k: repr(np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                    for k, v in ((k, getattr(self.bucketing, k, None)) for k in (
                        "mode", "bin_width", "boundaries", "pool_batches", "shuffle", "token_budget", "remainder",
                        "pad_to"))}}

    def __len__(self) -> int:
        return len(self.batches())

    def __repr__(self) -> str:
        return (f"BucketBatchSampler({len(self)} batches of up to {self.batch_size}, epoch={self.epoch}, "
                f"rank {self.rank} of {self.num_replicas})")


class SequenceItem(NamedTuple):
    """One sequence of a :class:`SequenceDataset`: ``x`` ``(length, features)``, ``y`` (per sequence
    ``(...)`` or per step ``(length, ...)``; ``None`` without targets) and its position ``index``."""

    x: torch.Tensor
    y: torch.Tensor | None
    index: int  # type: ignore[assignment]  # shadows tuple.index; the public field name is kept


class PaddedBatch(NamedTuple):
    """A padded batch from :func:`pad_collate`.

    Attributes
    ----------
    x : tensor ``(batch, longest, features)``, padded with ``pad_value``
    y : per sequence ``(batch, ...)``; per step ``(batch, longest, ...)`` padded; ``None`` without targets
    weight : float32 ``(batch, longest)``, 1 on real steps (per-step targets), else ``None``
    lengths : int64 CPU tensor ``(batch,)``: for ``pack_padded_sequence(x, lengths, batch_first=True,
        enforce_sorted=False)``
    mask : bool ``(batch, longest)``, True on real steps
    indices : int64 ``(batch,)``: the sequences' positions (to map outputs back)
    """

    x: torch.Tensor
    y: torch.Tensor | None
    weight: torch.Tensor | None
    lengths: torch.Tensor
    mask: torch.Tensor
    indices: torch.Tensor


def _pad(tensors: Sequence[torch.Tensor], longest: int, padding: str, pad_value: float) -> torch.Tensor:
    first = tensors[0]
    out = torch.full((len(tensors), longest) + tuple(first.shape[1:]), pad_value, dtype=first.dtype)
    for i, t in enumerate(tensors):
        n = t.shape[0]
        if padding == "post":
            out[i, :n] = t
        else:
            out[i, longest - n:] = t
    return out


def pad_collate(items: Sequence[Any], *, padding: str = "post", pad_value: float = 0.0,
                per_step: bool = False) -> PaddedBatch:
    """Pad a list of sequences ``(x, y, index)`` (as :class:`SequenceDataset` gives them) into a batch.

    Parameters
    ----------
    items : list of ``(x, y, index)``; ``x`` ``(length_i, features)``
    padding : "post" or "pre"
    pad_value : float
    per_step : bool
        ``y`` holds one target per step (padded like ``x``, with ``weight``); else one per sequence
        (stacked). :attr:`SequenceDataset.collate` sets it from the bucketing.

    Examples
    --------
    >>> import torch
    >>> items = [(torch.ones(2, 1), torch.tensor(0.5), 0), (torch.ones(3, 1), torch.tensor(1.5), 1)]
    >>> b = pad_collate(items)
    >>> b.x[..., 0]
    tensor([[1., 1., 0.],
            [1., 1., 1.]])
    >>> b.lengths, b.y
    (tensor([2, 3]), tensor([0.5000, 1.5000]))
    """
    if not isinstance(padding, str) or padding not in ("post", "pre"):
        raise ParameterError(f"padding={padding!r} is not 'post' or 'pre'.", "pass padding='post' or 'pre'.")
    if isinstance(pad_value, bool) or not isinstance(pad_value, (numbers.Real, np.integer, np.floating)):
        raise ParameterError(f"pad_value must be a number, got {pad_value!r} ({type(pad_value).__name__}).",
                             "pass e.g. pad_value=0.0.")
    per_step = check_bool("per_step", per_step)
    gathered = getattr(items, "gathered", None)
    if gathered is not None and gathered[1:] == (padding, pad_value, per_step):
        return gathered[0]  # SequenceDataset.__getitems__ already padded the batch in one gather
    items = _check_items(items)
    xs = [to_tensor(it[0]) if not isinstance(it[0], torch.Tensor) else it[0] for it in items]
    if any(x.ndim == 0 for x in xs):
        raise ShapeError("a sequence is a scalar.", "pass sequences of shape (length, features).")
    _check_alike(xs, "sequences", "x")
    if not xs[0].is_floating_point() and not xs[0].is_complex() and float(pad_value) != int(pad_value):
        raise ParameterError(f"pad_value={pad_value!r} does not fit the sequences' dtype {xs[0].dtype}.",
                             "pass an integer pad_value for integer sequences (e.g. token id 0).")
    lengths = torch.tensor([x.shape[0] for x in xs], dtype=torch.int64)
    longest = int(lengths.max())
    x = _pad(xs, longest, padding, pad_value)
    steps = torch.arange(longest)
    mask = steps[None, :] < lengths[:, None] if padding == "post" else steps[None, :] >= (longest - lengths)[:, None]
    ys = [it[1] for it in items]
    y = weight = None
    if any(v is not None for v in ys):
        if any(v is None for v in ys):
            raise LengthMismatchError("some sequences of the batch have targets and some do not.",
                                      "give every sequence a target, or none.")
        ys = [v if isinstance(v, torch.Tensor) else to_tensor(v) for v in ys]
        if len({v.dtype for v in ys}) > 1:
            raise DTypeError(f"targets of the batch differ in dtype ({sorted({str(v.dtype) for v in ys})}).",
                             "give every sequence targets of one dtype.")
        if per_step:
            bad = [i for i, (v, n) in enumerate(zip(ys, lengths.tolist())) if v.ndim == 0 or v.shape[0] != n]
            if bad:
                raise LengthMismatchError(f"per_step=True but the targets of item {bad[0]} do not have one row per "
                                          "step.", "pass per_step=False for one target per sequence.")
            y = _pad(ys, longest, padding, pad_value)
            weight = mask.to(torch.float32)
        else:
            if len({tuple(v.shape) for v in ys}) > 1:
                raise LengthMismatchError("targets of the batch differ in shape, so they do not stack into one "
                                          "per-sequence target.", "pass per_step=True for one target per step.")
            y = torch.stack(ys)
    indices = torch.tensor([_item_index(it[2]) for it in items], dtype=torch.int64)
    return PaddedBatch(x, y, weight, lengths, mask, indices)


def _check_items(items: Any) -> Sequence:
    """A non-empty sequence of ``(x, y, index)`` items, as :class:`SequenceDataset` gives them."""
    fix = "pass a list of (x, y, index) items, as SequenceDataset gives them (y may be None)."
    if isinstance(items, (str, bytes, np.ndarray, torch.Tensor)) or not isinstance(items, Sequence):
        raise ParameterError(f"pad_collate needs a list of (x, y, index) items, got {type(items).__name__}.", fix)
    if not len(items):
        raise ParameterError("pad_collate got an empty batch.", "give it at least one sequence.")
    for j, it in enumerate(items):
        if not isinstance(it, (tuple, list)) or len(it) != 3:
            raise ParameterError(f"item {j} of the batch is a {type(it).__name__}"
                                 f"{f' of {len(it)} parts' if isinstance(it, (tuple, list)) else ''}, not (x, y, "
                                 "index).",
                                 fix)
    return items


def _check_alike(ts: Sequence[torch.Tensor], what: str, name: str) -> None:
    """Tensors that pad into one batch: one dtype, one shape after the time axis."""
    if len({t.dtype for t in ts}) > 1:
        raise DTypeError(f"the {what} of the batch differ in dtype ({sorted({str(t.dtype) for t in ts})}): padding "
                         f"into the first one's dtype would silently convert the others.",
                         f"give every sequence's {name} one dtype (e.g. float32).")
    shapes = {tuple(t.shape[1:]) for t in ts}
    if len(shapes) > 1:
        raise ShapeError(f"the {what} of the batch differ in shape after the time axis ({sorted(shapes)}).",
                         f"give every sequence's {name} the shape (length, features) with the same features.")


def _item_index(i: Any) -> int:
    if isinstance(i, torch.Tensor) and i.ndim == 0 and not i.is_floating_point() and i.dtype != torch.bool:
        return int(i)
    if isinstance(i, bool) or not isinstance(i, (numbers.Integral, np.integer)):
        raise ParameterError(f"an item's index is {i!r} ({type(i).__name__}), not an integer.",
                             "give each item its integer position (SequenceDataset does).")
    return int(i)


class _LazyItems(list):
    """A list of a batch's items that makes them on first use (``_make_items``), ``_n`` items long.

    Collates that know the batch read its gathered arrays instead and never fill the list; any other
    reader (a custom collate, indexing, iteration, pickling by a worker process) sees a plain list.
    """

    _n = 0
    _filled = False

    def _make_items(self) -> Iterator[Any]:
        raise NotImplementedError

    def _fill(self) -> "_LazyItems":
        if not self._filled:
            self._filled = True
            super().extend(self._make_items())
        return self

    def _unchanged(self) -> bool:
        return not self._filled  # items may have been replaced once the list is filled

    def __len__(self) -> int:
        return self._n if not self._filled else super().__len__()

    def __getitem__(self, k):
        return list.__getitem__(self._fill(), k)

    def __iter__(self):
        return list.__iter__(self._fill())

    def __reversed__(self):
        return list.__reversed__(self._fill())

    def __contains__(self, item) -> bool:
        return list.__contains__(self._fill(), item)

    def __eq__(self, other) -> bool:
        return list.__eq__(self._fill(), other)

    __hash__ = None

    def __repr__(self) -> str:
        return list.__repr__(self._fill())

    def __reduce_ex__(self, protocol):  # pickled (e.g. by a worker process) as a plain list of the items
        return list, ([tuple(it) if isinstance(it, tuple) else it for it in self._fill()],)


class _Gathered(_LazyItems):
    """Items of one batch gathered together; ``gathered`` = (the padded batch, padding, pad_value, per_step).

    The per-item views are made on first use of the items (a collate other than :func:`pad_collate`
    reads them); ``pad_collate`` hands ``gathered`` on without touching them, which saves a Python
    object per sequence (a third of a DataLoader epoch of short sequences).
    """

    gathered: tuple | None = None

    def __init__(self, n: int, make):
        super().__init__()
        self._n, self._make = n, make

    def _make_items(self):
        return self._make()


class SequenceDataset(torch.utils.data.Dataset):
    """The sequences of a :class:`~statebatch.Bucketing` as a map-style dataset: item ``i`` is
    ``(x_i, y_i, i)`` unpadded. Use with :class:`BucketBatchSampler` and :attr:`collate`::

        ds = SequenceDataset(bucketing)
        sampler = BucketBatchSampler(bucketing)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate)
    """

    def __init__(self, bucketing: Bucketing):
        if not isinstance(bucketing, Bucketing):
            raise ParameterError(f"SequenceDataset needs a statebatch Bucketing, got {type(bucketing).__name__}.",
                                 "build it with statebatch.bucket_batches(...).")
        self.bucketing = bucketing

    def __len__(self) -> int:
        return self.bucketing.n_sequences

    def __getitem__(self, i: int) -> SequenceItem:
        i = int(_positions([check_int("sequence index", i)], len(self), "sequence")[0])
        b = self.bucketing.materialise([i])
        y = None if b.y is None else to_tensor(b.y[0])
        return SequenceItem(to_tensor(b.X[0]), y, i)

    def __getitems__(self, indices: Sequence[int]) -> list[SequenceItem]:
        """A batch of sequences with one padded gather (``DataLoader`` calls this with each batch of indices);
        :meth:`collate` then hands the padded batch on without padding it again."""
        idx = _positions(indices, len(self), "sequence")
        if not idx.size:
            return []
        b = self.bucketing.materialise(idx)
        x, mask = to_tensor(b.X), to_tensor(b.mask)
        y = None if b.y is None else to_tensor(b.y)
        per_step = self._per_step
        lengths = torch.from_numpy(np.asarray(b.lengths, dtype=np.int64).copy())
        longest = x.shape[1]
        post = self.bucketing.padding == "post"

        def make():
            out = []
            for j, (i, m) in enumerate(zip(idx.tolist(), lengths.tolist())):
                rows = slice(0, m) if post else slice(longest - m, longest)
                out.append(SequenceItem(x[j, rows], None if y is None else (y[j, rows] if per_step else y[j]), i))
            return out

        items = _Gathered(len(idx), make)
        weight = mask.to(torch.float32) if per_step else None
        items.gathered = (PaddedBatch(x, y, weight, lengths, mask, torch.from_numpy(idx.copy())),
                          self.bucketing.padding, self.bucketing.pad_value, per_step)
        return items

    @property
    def collate(self):
        """:func:`pad_collate` with this bucketing's ``padding``, ``pad_value`` and kind of targets."""
        import functools

        return functools.partial(pad_collate, padding=self.bucketing.padding, pad_value=self.bucketing.pad_value,
                                 per_step=self._per_step)

    @property
    def _per_step(self) -> bool:
        """Whether the targets are one per step (padded like x), else one per sequence."""
        return bool(self.bucketing.return_sequences and self.bucketing.has_targets)
