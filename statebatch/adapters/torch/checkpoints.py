"""Checkpoints of samplers and loaders (the torchdata ``StatefulDataLoader`` convention): where an epoch
stands, and the identity that keeps a state from being loaded into other data."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..._args import check_int
from ...errors import ParameterError


class _ResumableBatches:
    """Epoch and position of a batch sampler, for ``state_dict``/``load_state_dict`` (the torchdata
    ``StatefulDataLoader`` convention). The batches of an epoch are a pure function of the sampler's data,
    options, seed and the epoch, so ``(epoch, batches handed out)`` is the whole state; ``_identity()``
    describes the rest, so that a state is not loaded into a sampler that would plan other batches."""

    epoch: int = 0
    _resume: int = 0
    _pos: list | None = None

    def _identity(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _epoch_batches(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch``'s batches (reshuffled) from now on. After :meth:`load_state_dict`, setting the
        loaded epoch again keeps the resume point (a resumed loop calls ``set_epoch`` at its top)."""
        epoch = check_int("epoch", epoch, 0)
        if epoch != self.epoch:
            self._resume = 0
        self.epoch, self._pos = epoch, None

    def _served(self, batches: list, convert) -> Iterator:
        start, self._resume = self._resume, 0
        self._pos = pos = [self.epoch, start]
        for b in batches[start:]:
            pos[1] += 1  # counted as handed over: a state taken after this batch resumes at the next one
            yield convert(b)
        if self._pos is pos:
            self._pos = None

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "batch", "sampler"}``: ``batch`` = batches of ``epoch`` handed out so far. Exact when the
        ``DataLoader`` fetches in the training process (``num_workers=0``): worker processes ask for batches
        ahead of the ones the loop has received."""
        epoch, batch = self._pos if self._pos is not None else (self.epoch, self._resume)
        return {"epoch": int(epoch), "batch": int(batch), "sampler": self._identity()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next pass serves the rest of the saved epoch, exactly."""
        name = type(self).__name__
        fix = f"pass what {name}.state_dict() returned for a sampler built with the same call."
        if not isinstance(state, dict) or not {"epoch", "batch", "sampler"} <= set(state):
            raise ParameterError(f"a {name} state is a dict with 'epoch', 'batch' and 'sampler', got "
                                 f"{type(state).__name__}.", fix)
        epoch = check_int("the state's epoch", state["epoch"], 0)
        batch = check_int("the state's batch", state["batch"], 0)
        _same_identity(self._identity(), state["sampler"], "sampler",
                       "build the sampler from the same data and options (seed included) before loading.")
        self.epoch, self._pos = epoch, None
        n = len(self._epoch_batches())
        if batch > n:
            raise ParameterError(f"the state's batch {batch} is beyond epoch {epoch}'s {n} batches.", fix)
        self._resume = batch


def _keys_of(state: Any) -> str:
    return f" with keys {sorted(map(str, state))}" if isinstance(state, dict) else ""


def _same_identity(mine: dict, theirs: Any, what: str, fix: str) -> None:
    if isinstance(theirs, dict) and theirs == mine:
        return
    keys = sorted(k for k in set(mine) | set(theirs if isinstance(theirs, dict) else {})
                  if not isinstance(theirs, dict) or mine.get(k) != theirs.get(k))
    raise ParameterError(f"the state was saved for another {what} (differs in {', '.join(keys)}): the batches after "
                         "it would not be the ones the saved run was to see.", fix)


def _crc(a: Any) -> int:
    """A checksum of integer data that is the same in every process (unlike ``hash()``)."""
    import zlib

    return int(zlib.crc32(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes()))
