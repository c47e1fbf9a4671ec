"""PyTorch adapter: lanes, lane resets, recurrent state and buckets for ``torch.utils.data``.

Importing this module imports torch. PyTorch has no stateful mode: truncated backpropagation
through time is a loop that carries the hidden state from one batch to the next, detaches it
(``repackage_hidden`` in pytorch/examples' word language model) and must zero the rows whose lane
moves on to a new series. The epoch logic (which lanes reset before batch k, keeping validation
state apart) lives in :mod:`statebatch.schedule`; this module maps it onto torch:

- :class:`LaneLoader` yields an arrangement's batches as ``(x, y, weight, reset)`` tensors, strictly
  in order, optionally pinned and prefetched by one background thread (which cannot reorder).
- :class:`StateCarrier` carries a model's recurrent state (a GRU's ``h``, an LSTM's ``(h, c)``,
  ``(layers * directions, B, H)`` stacks, nested tuples): detaches it and zeroes the rows that reset;
  :meth:`StateCarrier.validation` keeps validation and inference state apart from training state.
- :class:`BucketBatchSampler` (for ``DataLoader(batch_sampler=...)``), :class:`SequenceDataset` and
  :func:`pad_collate` (lengths for ``pack_padded_sequence``, masks) for bucketing; ``set_epoch``
  reshuffles and ``num_replicas``/``rank`` split every epoch's batches between the ranks of a
  distributed run, each rank the same number of distinct batches.
- :class:`WindowDataset`: windows from :func:`~statebatch.make_windows` as a map-style dataset (forecasting
  windows as :class:`~statebatch.forecast.ForecastBatch` named tuples of tensors), one gather per batch.

Arrays reach torch without a copy where statebatch built them for this batch (they are writable and
share memory with nothing else); read-only arrays (views of the user's data, cached epochs) are
copied, so ``torch.from_numpy`` never warns and a tensor modified in place never writes into the
user's data.
"""

from .buckets import BucketBatchSampler, PaddedBatch, SequenceDataset, SequenceItem, pad_collate
from .distributed import even_batches
from .lanes import LaneBatch, LaneCovariateBatch, LaneLoader
from .state import StateCarrier, carry, detach_state
from .tensors import forecast_batch, to_tensor
from .windows import WindowBatchSampler, WindowDataset

__all__ = ["LaneLoader", "LaneBatch", "LaneCovariateBatch", "StateCarrier", "carry", "detach_state", "BucketBatchSampler",
           "SequenceDataset", "SequenceItem", "PaddedBatch", "pad_collate", "WindowDataset", "WindowBatchSampler",
           "to_tensor", "even_batches", "forecast_batch"]
