"""The framework-neutral epoch logic: the in-order guard under worker threads."""
import threading
import time
import numpy as np
import pytest

from statebatch.errors import ShuffleError
from statebatch.results.schedule import InOrderGuard


def run_pool(guard, order, workers, seed, delay=0.002, queue=10):
    """Hand `order` to `workers` threads in turn, at most `queue` ahead of the oldest unfinished one (like
    Keras' OrderedEnqueuer, whose consumer waits for results in order); each thread sleeps a random
    while before it reaches the guard. Returns the batches the guard let through, and its errors."""
    rng = np.random.default_rng(seed)
    sleeps = rng.uniform(0, delay, len(order))
    cond, nxt, done, passed, errors = threading.Condition(), [0], set(), [], []

    def oldest_unfinished():
        i = 0
        while i in done:
            i += 1
        return i

    def worker():
        while True:
            with cond:
                cond.wait_for(lambda: nxt[0] >= len(order) or nxt[0] < oldest_unfinished() + queue)
                i = nxt[0]
                nxt[0] += 1
            if i >= len(order):
                return
            time.sleep(sleeps[i])
            try:
                guard.check(order[i])
                passed.append(order[i])
            except ShuffleError as exc:
                errors.append(exc)
            with cond:
                done.add(i)
                cond.notify_all()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return passed, errors


@pytest.mark.parametrize("workers", [2, 4])
@pytest.mark.parametrize("seed", range(6))
def test_any_thread_timing_of_in_order_passes_is_accepted(workers, seed):
    n = 30
    g = InOrderGuard(workers=workers, lookahead=10)
    g.check(0)
    g.check(1)  # Keras on TensorFlow peeks batches 0 and 1, then iterates from 0
    for _ in range(3):  # fit epochs, then evaluate/predict: new passes without an explicit reset
        passed, errors = run_pool(g, list(range(n)), workers, seed)
        assert errors == [] and sorted(passed) == list(range(n))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_a_shuffled_order_is_refused_with_workers(workers):
    for seed in range(20):  # Keras' shuffle of a 100-batch epoch, 20 times: caught every time
        order = list(np.random.default_rng(seed).permutation(100))
        g = InOrderGuard(workers=workers, lookahead=10)
        passed, errors = run_pool(g, order, workers, seed, delay=0.0)
        assert errors and "shuffle=False" in str(errors[0]), order[:5]


def test_a_batch_twice_is_refused():
    g = InOrderGuard(workers=4, lookahead=10)
    for k in range(21):
        g.check(k)
    with pytest.raises(ShuffleError):
        g.check(20)  # beyond the first window a repeat cannot be a new pass
    g = InOrderGuard()
    for k in (0, 1, 2):
        g.check(k)
    with pytest.raises(ShuffleError):
        g.check(2)


def test_a_thread_that_overtakes_the_start_of_a_pass():
    """Deterministic version of a timing seen in CI: after the TF peek (0, 1), a thread takes batch 2 before
    0 and 1 arrive again, in this pass and the next."""
    g = InOrderGuard(workers=4, lookahead=10)
    g.check(0)
    g.check(1)
    for _ in range(3):
        for k in [2, 0, 1] + list(range(3, 30)):
            g.check(k)


def test_resets_of_follows_resets_source_and_guesses_nothing_else():
    """Wrappers name the lanes they serve as ``resets_source`` (issue 23: an explicit protocol, not Keras
    attribute names); a wrapper of a wrapper is followed; an object that names nothing is refused."""
    import statebatch as sb
    from statebatch.errors import ParameterError
    from statebatch.results.schedule import LaneSchedule, resets_of

    a = sb.arrange_stateful([np.arange(9.0), np.arange(4.0), np.arange(6.0)], 2, 2)

    class Wrapper:
        def __init__(self, inner, **attrs):
            self.resets_source = inner
            self.__dict__.update(attrs)

    assert resets_of(a) == (a, False, 2)
    assert resets_of(Wrapper(Wrapper(a)))[0] is a
    np.testing.assert_array_equal(LaneSchedule(Wrapper(a)).result.resets, a.resets)

    class OldStyle:  # the attribute names resets_of used to guess from
        arranged = a
        shards = a

    with pytest.raises(ParameterError, match="resets_source"):
        resets_of(OldStyle())
    with pytest.raises(ParameterError, match="expected arranged lanes"):
        resets_of(Wrapper(sb.make_windows(np.arange(10.0), 3)))  # windows have no resets
    loop = Wrapper(None)
    loop.resets_source = loop  # a wrapper that names itself: no endless loop
    with pytest.raises(ParameterError):
        resets_of(loop)
