"""Run one function in many threads at once and collect what they raise (tests of concurrent saves).

A thread's exception does not reach the test by itself (threading only prints it): each is collected
so that the test can assert that every call succeeded.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence


def run_threads(target: Callable[..., Any], args: Sequence[tuple], *, together: bool = False) -> list[BaseException]:
    """Call ``target(*a)`` for each ``a`` in ``args``, one thread each, and wait for all.

    ``together``: every thread waits at a barrier first, so the calls start at the same moment (the
    most contention). Returns the exceptions raised, in the order they happened (empty: all succeeded).
    """
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(args)) if together else None

    def work(*a: Any) -> None:
        if barrier is not None:
            barrier.wait()
        try:
            target(*a)
        except Exception as exc:  # noqa: BLE001 - collected and asserted on by the caller
            errors.append(exc)

    threads = [threading.Thread(target=work, args=a) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
