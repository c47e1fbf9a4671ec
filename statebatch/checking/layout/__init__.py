"""Layout detection: read from the data alone how the rows of stateful-RNN input are laid out.

A stateful recurrent layer with batch size B keeps B states; row i of batch k+1 must *continue* row i
of batch k. :func:`detect_layout` looks at ``X`` (samples, timesteps, features) and says which
arrangement it has (a :class:`LayoutVerdict` with evidence, fix and, where one exists, the
permutation that turns it into lanes):

====================  ===========================================================================
``lanes``             row i of batch k+1 continues row i of batch k (correct; resets allowed)
``natural_order_chunks``  sample j+1 continues sample j (non-overlapping chunks in series order)
``sliding_windows``   sample j+1 starts ``stride`` steps after sample j (overlaps, or gaps)
``shuffled_lanes``    rows continue other rows, but not row i -> row i of the next batch
``independent``       no row continues another, although values are continuous inside rows
``undetermined``      the data cannot tell: white noise, constant data, too few rows, or too
                      little information at row boundaries to find a hidden successor
``channels_first``    X is (samples, features, timesteps)
====================  ===========================================================================

The method, one module per step (each reads one :class:`~.verdict.Context`):

* :mod:`.detect` -- :func:`detect_layout`: provenance first, then the steps below on a sample of
  anchor rows (so the cost does not grow with the number of rows), and X read transposed when it
  looks channels-first.
* :mod:`.exact` -- exact evidence: every step hashed to one float64, hashes compared at row
  boundaries (never all pairs); shared bit-equal steps beyond what chance repeats explain; and
  statebatch's own provenance record (:func:`provenance_of`; a view of the same memory, or a copy
  whose rows are rows of one, reordered or not).
* :mod:`.junction` -- the junction model: small autoregressive predictors fitted *inside* rows score
  the junction between the end of one row and the start of another.
* :mod:`.statistical` -- the rank tests: the junctions of each successor map (``j -> j+B``, lanes;
  ``j -> j+1``, natural order) against cuts inside rows (true continuations) and random rows.
* :mod:`.permuted` -- rows permuted inside batches: each row end's best junction with the next
  batch's starts against a control batch at the same positions.
* :mod:`.shuffled` and :mod:`.search` -- successors anywhere (shuffled lanes, ``fit(shuffle=True)``):
  a nearest-neighbour search over a row subset against cut points inside rows, distinct best
  matches, and batch coherence against permuted batch labels. When these have too little power to
  find a successor that is there, the verdict is ``undetermined`` rather than ``independent``.

Exact and statistical: shared bit-equal steps and provenance give ``exact=True``; everything read
from continuity is statistical (``exact=False``), which ``check_layout`` only ever warns about.

Pure numpy; imports only :mod:`statebatch.errors`, :mod:`statebatch._args` and
:mod:`statebatch.results.provenance`.
"""

from ...results.provenance import (CHANNELS_FIRST, INDEPENDENT, KINDS, LANES, MISTAKES, NATURAL, SHUFFLED,
                                   SLIDING, STRUCTURED, UNDETERMINED, Provenance, provenance_of,
                                   register_provenance)
from .detect import detect_layout
from .verdict import LayoutVerdict

__all__ = ["detect_layout", "LayoutVerdict", "KINDS", "MISTAKES", "Provenance", "register_provenance",
           "provenance_of", "LANES", "NATURAL", "SLIDING", "SHUFFLED", "INDEPENDENT", "UNDETERMINED",
           "CHANNELS_FIRST", "STRUCTURED"]
