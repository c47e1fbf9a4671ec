"""Argument checks shared by every public function (the lowest layer: imports only ``errors``).

Each helper returns the normalised value or raises :class:`~statebatch.errors.ParameterError` whose
message names the argument, the value received and what to pass instead.
"""

from __future__ import annotations

import numbers
import os
import secrets
from typing import Any, Iterable

import numpy as np

from .errors import ParameterError

# Allocations larger than this machine's physical memory cannot succeed: they are refused up front
# with the size in words instead of a MemoryError (or the kernel's OOM killer) half way through.
def _memory_limit() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # not POSIX: a generous fixed bound
        return 2**40


MEMORY_LIMIT = _memory_limit()


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (not a bool, not a float) within ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        hint = f"{name}={minimum}" if minimum is not None else f"an integer {name}"
        raise ParameterError(f"{name} must be an integer, got {value!r} ({type(value).__name__}).",
                             f"pass {hint}" + (" or more." if minimum is not None else "."))
    value = int(value)
    if minimum is not None and value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}.", f"pass {name}={minimum} or more.")
    if maximum is not None and value > maximum:
        raise ParameterError(f"{name} must be <= {maximum}, got {value}.", f"pass {name}={maximum} or less.")
    return value


def check_optional_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int | None:
    return None if value is None else check_int(name, value, minimum, maximum)


def check_bool(name: str, value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ParameterError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).",
                         f"pass {name}=True or {name}=False.")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if isinstance(value, str) and value in choices:
        return value
    if not isinstance(value, str) and any(value is c for c in choices):
        return value
    shown = ", ".join(repr(c) for c in choices)
    raise ParameterError(f"{name}={value!r} is not one of {shown}.", f"pass {name}={choices[0]!r} (or another of {shown}).")


def check_fraction(name: str, value: Any, *, low: float = 0.0, high: float = 1.0, inclusive: bool = False) -> float:
    """A real number strictly inside ``(low, high)`` (or ``[low, high]`` when ``inclusive``)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ParameterError(f"{name} must be a number, got {value!r} ({type(value).__name__}).",
                             f"pass e.g. {name}=0.2.")
    value = float(value)
    ok = (low <= value <= high) if inclusive else (low < value < high)
    if not ok or not np.isfinite(value):
        bounds = f"[{low}, {high}]" if inclusive else f"({low}, {high})"
        raise ParameterError(f"{name} must lie in {bounds}, got {value}.", f"pass e.g. {name}=0.2.")
    return value


def check_real(name: str, value: Any, *, minimum: float | None = None, strict: bool = False,
               example: str = "1.0") -> float:
    """A finite real number (not a bool, not text) ``>= minimum`` (``> minimum`` when ``strict``).

    NaN compares false with everything, so a NaN limit would silently disable the rule it sets, and
    ``True`` would silently mean 1: both are refused by name.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ParameterError(f"{name} must be a number, got {value!r} ({type(value).__name__}).",
                             f"pass e.g. {name}={example}.")
    value = float(value)
    if not np.isfinite(value):
        raise ParameterError(f"{name} must be a finite number, got {value}.", f"pass e.g. {name}={example}.")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise ParameterError(f"{name} must be {bound}, got {value}.", f"pass e.g. {name}={example}.")
    return value


def check_path(name: str, value: Any) -> "os.PathLike | str":
    """A file path (``str`` or ``os.PathLike``, not empty)."""
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value.strip()):
        raise ParameterError(f"{name} must be a file path (str or pathlib.Path), got {value!r} "
                             f"({type(value).__name__}).", f"pass e.g. {name}='states.npz'.")
    return value


def check_seed(name: str, seed: Any) -> int | None:
    """``None`` or a non-negative integer seed."""
    if seed is None:
        return None
    return check_int(name, seed, 0)


def resolve_seed(seed: Any) -> int:
    """A concrete seed: the given one, or fresh entropy drawn once (so a result stays reproducible)."""
    seed = check_seed("seed", seed)
    if seed is None:
        # 128 bits of OS entropy, as np.random.SeedSequence() draws them (without its pool mixing: 40 us)
        return secrets.randbits(128) % (2**63)
    return seed


def rng_for(seed: int | None, epoch: int, stream: int = 0) -> np.random.Generator:
    """The generator of one epoch: a pure function of ``(seed, epoch, stream)``."""
    if seed is None:  # callers draw one first; a plan without a seed could not be replayed
        raise ParameterError("a random plan needs a seed to be a pure function of its arguments.",
                             "pass seed=0 (or any integer).")
    return np.random.default_rng((int(seed), int(epoch), int(stream)))


def available_memory() -> int:
    """Bytes that can be allocated now without swapping: Linux' ``MemAvailable`` (read at each call, since
    other processes come and go), else the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return min(int(line.split()[1]) * 1024, MEMORY_LIMIT)
    except (OSError, ValueError, IndexError):
        pass
    return MEMORY_LIMIT


SIZE_FIX = ("use a smaller batch_size or timesteps, check that the parameters are what you meant, or read batches "
            "lazily (iterate the result, or use a Keras dataset) instead of materialising the whole epoch.")


def check_size(what: str, shape: tuple, itemsize: int = 8, copies: int = 1, fix: str | None = None) -> None:
    """Refuse an allocation larger than the memory available now, naming its size, before it is tried
    (instead of a bare ``MemoryError`` half way through, or the kernel's OOM killer).

    ``copies`` counts arrays of that size alive at once (e.g. a packed copy and its transposed copy).
    """
    n = 1
    for d in shape:
        n *= max(int(d), 0)
    need = n * int(itemsize) * int(copies)
    if need <= 2**26:  # 64 MiB and less: not worth reading /proc on every batch
        return
    free = available_memory()
    if need > free:
        raise ParameterError(
            f"{what} would need {need / 2**30:,.1f} GiB for shape {tuple(int(d) for d in shape)}"
            + (f" ({copies} copies)" if copies > 1 else "") + f", more than the {free / 2**30:,.1f} GiB of memory "
            f"available now (this machine has {MEMORY_LIMIT / 2**30:,.0f} GiB).", fix or SIZE_FIX)


def allocate(what: str, shape: tuple, dtype: Any, fill: Any = None, fix: str | None = None) -> np.ndarray:
    """``np.empty``/``np.full`` of a size derived from user parameters: checked against the available memory
    first, and a ``MemoryError`` the check could not foresee still becomes a statebatch error."""
    dtype = np.dtype(dtype)
    check_size(what, shape, dtype.itemsize, fix=fix)
    try:
        return np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
    except MemoryError:
        n = 1
        for d in shape:
            n *= max(int(d), 0)
        raise ParameterError(f"{what} ({n * dtype.itemsize / 2**30:,.1f} GiB for shape {tuple(shape)}) could not be "
                             "allocated: not enough memory.", fix or SIZE_FIX) from None


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so that messages print ``72.0``, not ``np.float64(72.0)``
    (numpy >= 2 reprs); anything else as it is.

    Examples
    --------
    >>> plain(np.float64(72.0)), plain(np.int64(5)), plain("a")
    (72.0, 5, 'a')
    """
    return value.item() if isinstance(value, np.generic) else value


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``"1 batch"``, ``"2 batches"``: counts in messages read right at every edge."""
    if n == 1:
        return f"1 {word}"
    return f"{n} {plural_form or _plural(word)}"


def _plural(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def percent(fraction: float) -> str:
    """A fraction as every statebatch summary prints it (``0.119 -> "11.90%"``): the CLI, reprs,
    ``explain`` and plots show the same figure for the same arrangement."""
    return f"{float(fraction):.2%}"
