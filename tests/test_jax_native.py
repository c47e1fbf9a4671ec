"""statebatch.jax: JAX without Keras (grain data source, Flax lane loop), proven like the torch path.

Runs in the JAX environment (``make test-jax``, marker ``jax_native``): it needs jax, flax and grain.

- A Flax ``nnx.RNN(nnx.LSTMCell)`` run lane by lane over real series (UCI Japanese Vowels, bundled),
  repacked every epoch, with the carry rows zeroed where ``reset`` says, gives every series exactly
  the outputs of the same weights run on that series alone, in every epoch; the truncated-BPTT loss
  (``sum(weight * err) / sum(weight)`` over the lanes' batches) equals the per-series loss.
- The grain source serves every batch of every epoch as the result does, resumes from
  ``get_state``, shards batches over processes (windows) and lanes over replicas (lanes).
"""

import numpy as np
import pytest

pytestmark = pytest.mark.jax_native

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

import statebatch as sb  # noqa: E402
from statebatch.errors import BatchSizeError, ParameterError  # noqa: E402
from statebatch.jax import BatchSource, LaneIterator, grain_loader, lane_batches, zero_rows  # noqa: E402


@pytest.fixture(scope="module")
def vowels():
    data = sb.load_japanese_vowels()
    series = data["X_train"][:23]
    return [np.asarray(s, dtype=np.float32) for s in series]


class Net(nnx.Module):
    def __init__(self, features: int, units: int, rngs: nnx.Rngs):
        self.rnn = nnx.RNN(nnx.LSTMCell(features, units, rngs=rngs), return_carry=True)
        self.head = nnx.Linear(units, features, rngs=rngs)

    def __call__(self, x, carry):
        carry, h = self.rnn(x, initial_carry=carry)
        return self.head(h), carry


def _zero_carry(lanes: int, units: int):
    return (jnp.zeros((lanes, units)), jnp.zeros((lanes, units)))


@nnx.jit
def _forward(net, x, carry):
    return net(x, carry)


def _each_alone(net, series):
    """Every series run alone from zero state: one call on the series padded at their ends (the RNN is
    causal, so a series' outputs never see the padding after it)."""
    longest = max(len(s) for s in series)
    padded = np.zeros((len(series), longest, series[0].shape[1]), np.float32)
    for i, s in enumerate(series):
        padded[i, :len(s)] = s
    out, _ = _forward(net, jnp.asarray(padded), _zero_carry(len(series), 8))
    return [np.asarray(out)[i, :len(s)] for i, s in enumerate(series)]


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_flax_lanes_equal_each_series_alone_in_every_epoch(vowels, num_replicas):
    net = Net(12, 8, nnx.Rngs(0))
    arranged = sb.arrange_stateful(vowels, timesteps=6, batch_size=8, shuffle=True, seed=4)
    lanes = 8 // num_replicas
    for epoch in (0, 1):
        per_rank_outputs = []
        for rank in range(num_replicas):
            carry, outs = _zero_carry(lanes, 8), []
            for step in lane_batches(arranged, epoch, num_replicas=num_replicas, rank=rank):
                carry = zero_rows(carry, step.reset)
                out, carry = _forward(net, step.x, carry)
                outs.append(np.asarray(out))
            per_rank_outputs.append(outs)
        # the replicas' blocks side by side are the whole batches
        full = [np.concatenate([per_rank_outputs[r][k] for r in range(num_replicas)]) for k in range(len(outs))]
        arranged.set_epoch(epoch)
        per_series = arranged.unbatch(full)
        alone = _each_alone(net, vowels)
        worst = max(float(np.abs(a[:len(got)] - got).max()) for a, got in zip(alone, per_series))
        assert worst <= 1e-5, (epoch, worst)


class CovariateNet(nnx.Module):
    """``past`` and ``future`` (the known values of each step's target step) through an LSTM; ``static``
    projected and added to every step before the head."""

    def __init__(self, rngs: nnx.Rngs):
        self.rnn = nnx.RNN(nnx.LSTMCell(3, 8, rngs=rngs), return_carry=True)
        self.static = nnx.Linear(2, 8, rngs=rngs)
        self.head = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, x, carry):
        carry, h = self.rnn(jnp.concatenate([x["past"], x["future"]], axis=-1), initial_carry=carry)
        return self.head(h + self.static(x["static"])[:, None, :]), carry


def _covariate_frame(lengths, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.concat([pd.DataFrame({"id": f"s{i}", "t": np.arange(n), "v": rng.normal(size=n), "price": rng.normal(
        size=n), "promo": rng.integers(0, 2, size=n).astype(float), "shop": "xy"[i % 2], "size": float(i % 3 + 1)})
        for i, n in enumerate(lengths)], ignore_index=True)


@pytest.mark.parametrize("num_replicas", [1, 2])
def test_flax_lanes_with_covariates_equal_each_series_alone(num_replicas):
    df = _covariate_frame([23, 9, 31, 14, 18, 12])
    net = CovariateNet(nnx.Rngs(3))
    arranged = sb.arrange_stateful(df, 5, 4, id_col="id", time_col="t", target_cols=["v"], feature_cols=["v"],
                                   static_cols=["shop", "size"], known_cols=["price", "promo"], shuffle=True, seed=4,
                                   dtype="float32")
    lanes = 4 // num_replicas
    for epoch in (0, 1):
        per_rank = []
        for rank in range(num_replicas):
            carry, outs = _zero_carry(lanes, 8), []
            for step in lane_batches(arranged, epoch, num_replicas=num_replicas, rank=rank):
                assert sorted(step.x) == ["future", "past", "static"]
                carry = zero_rows(carry, step.reset)
                out, carry = _forward(net, step.x, carry)
                outs.append(np.asarray(out))
            per_rank.append(outs)
        full = [np.concatenate([per_rank[r][k] for r in range(num_replicas)]) for k in range(len(outs))]
        per_series = arranged.unbatch(full, epoch=epoch)
        for s, got in enumerate(per_series):  # the same weights on the series alone, from zero state
            rows = df[df["id"] == arranged.series_ids[s]]
            n = len(rows) - 1  # steps with a next-value target
            x = {"past": rows[["v"]].to_numpy("float32")[None, :n],
                 "future": rows[["price", "promo"]].to_numpy("float32")[None, 1:],  # each step's target step
                 "static": np.array([["xy".index(rows["shop"].iloc[0]), rows["size"].iloc[0]]], np.float32)}
            alone, _ = _forward(net, x, _zero_carry(1, 8))
            np.testing.assert_allclose(got, np.asarray(alone)[0], atol=1e-5, err_msg=f"epoch {epoch}, series {s}")
    source = BatchSource(arranged, epochs=1, num_replicas=2, rank=1)  # grain records: x by key, this block
    want = arranged.batch(0, 0)
    for key in ("past", "future", "static"):
        np.testing.assert_array_equal(source[0]["x"][key], want[key][2:])
    np.testing.assert_array_equal(source[0]["y"], want["y"][2:])


def test_grain_records_of_forecasting_windows_hold_their_inputs_under_x():
    w = sb.make_windows(_covariate_frame([20, 9]), 4, id_col="id", time_col="t", target_cols=["v"],
                        feature_cols=["v"], static_cols=["size"], known_cols=["price"], batch_size=8)
    record, want = BatchSource(w)[1], w.batch(1)
    assert sorted(record["x"]) == ["future", "past", "static"]
    for key in record["x"]:
        np.testing.assert_array_equal(record["x"][key], want[key])
    np.testing.assert_array_equal(record["y"], want["y"])


def test_truncated_bptt_loss_equals_the_per_series_loss(vowels):
    net = Net(12, 8, nnx.Rngs(1))
    arranged = sb.arrange_stateful(vowels, timesteps=5, batch_size=6)

    def loss_fn(model, carry, x, y, w):
        out, carry = model(x, carry)
        err = jnp.mean((out - y) ** 2, axis=-1)
        return jnp.sum(err * w), (jnp.sum(w), carry)

    step_fn = nnx.jit(nnx.value_and_grad(loss_fn, has_aux=True))
    carry, total, weight = _zero_carry(6, 8), 0.0, 0.0
    grads_seen = 0
    for step in lane_batches(arranged):
        carry = zero_rows(carry, step.reset)
        (s, (wsum, carry)), grads = step_fn(net, carry, step.x, step.y, step.weight)
        carry = jax.lax.stop_gradient(carry)  # truncated BPTT: the carry is a constant for the next batch
        total, weight = total + float(s), weight + float(wsum)
        grads_seen += int(all(np.isfinite(np.asarray(g)).all() for g in jax.tree_util.tree_leaves(grads)))
    assert grads_seen > 0
    # reference: every series alone, next-step targets (arrange_stateful's default), mean over all steps
    num, den = 0.0, 0
    for s, out in zip(vowels, _each_alone(net, [s[:-1] for s in vowels])):
        err = np.mean((out - s[1:]) ** 2, axis=-1)
        num, den = num + float(err.sum()), den + err.size
    assert weight == den
    assert abs(total / weight - num / den) <= 1e-5 * max(1.0, num / den)


def test_grain_source_serves_every_batch_in_plan_order_and_resumes(vowels):
    w = sb.make_windows(vowels, timesteps=5, targets="next", batch_size=32, shuffle=True, seed=2)
    loader = grain_loader(w, epochs=2)
    it = iter(loader)
    got = []
    for _ in range(3):
        got.append(next(it))
    state = it.get_state()
    rest = list(it)
    assert len(got) + len(rest) == w.plan(0).n_batches + w.plan(1).n_batches
    for rec in got + rest:
        X, y = w.batch(int(rec["batch"]), int(rec["epoch"]))
        np.testing.assert_array_equal(rec["x"], X)
        np.testing.assert_array_equal(rec["y"], y)
    resumed = iter(grain_loader(w, epochs=2))
    resumed.set_state(state)
    again = list(resumed)
    assert [(int(r["epoch"]), int(r["batch"])) for r in again] == [(int(r["epoch"]), int(r["batch"])) for r in rest]
    for a, b in zip(again, rest):
        np.testing.assert_array_equal(a["x"], b["x"])


def test_grain_shards_windows_by_batch_and_lanes_by_lane(vowels):
    import grain

    w = sb.make_windows(vowels, timesteps=5, batch_size=16, shuffle=True, seed=2)
    source = BatchSource(w)
    seen = []
    for index in range(2):  # what ShardByJaxProcess gives process `index` of 2
        sampler = grain.samplers.IndexSampler(num_records=len(source), shuffle=False, num_epochs=1,
                                              shard_options=grain.sharding.ShardOptions(index, 2, drop_remainder=False))
        seen.append([int(r["batch"]) for r in grain.DataLoader(data_source=source, sampler=sampler)])
    assert sorted(seen[0] + seen[1]) == list(range(len(source)))
    assert not set(seen[0]) & set(seen[1])

    arranged = sb.arrange_stateful(vowels, timesteps=6, batch_size=8)
    halves = [BatchSource(arranged, num_replicas=2, rank=r) for r in (0, 1)]
    for k in range(len(halves[0])):
        X, y, wt = arranged.batch(k)
        np.testing.assert_array_equal(np.concatenate([h[k]["x"] for h in halves]), X)
        np.testing.assert_array_equal(np.concatenate([h[k]["weight"] for h in halves]), wt)
        assert halves[0][k]["reset"].shape == (4,)
    assert bool(halves[0][0]["reset"].all())


def test_lane_iterator_resumes_mid_epoch_exactly(vowels):
    arranged = sb.arrange_stateful(vowels, timesteps=6, batch_size=4, shuffle=True, seed=9)
    full = [(s.batch, s.x.copy(), s.reset.copy()) for s in LaneIterator(arranged)]
    twin = sb.arrange_stateful(vowels, timesteps=6, batch_size=4, shuffle=True, seed=9)
    it = LaneIterator(twin)
    it.load_state_dict({"epoch": 0, "batch": 5})
    rest = [(s.batch, s.x, s.reset) for s in it]
    assert [k for k, _, _ in rest] == [k for k, _, _ in full[5:]]
    for (_, a, ra), (_, b, rb) in zip(rest, full[5:]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ra, rb)
    assert it.state_dict() == {"epoch": 1, "batch": 0}


def test_bad_inputs_are_statebatch_errors(vowels):
    arranged = sb.arrange_stateful(vowels, timesteps=6, batch_size=8)
    with pytest.raises(BatchSizeError, match="divisible by 3"):
        list(lane_batches(arranged, num_replicas=3, rank=0))
    with pytest.raises(ParameterError, match="rank=2 is outside"):
        BatchSource(arranged, num_replicas=2, rank=2)
    with pytest.raises(ParameterError, match="one flag per lane"):
        zero_rows((jnp.ones((3, 2)),), [0, 1, 0])
    with pytest.raises(ParameterError, match="no row per lane"):
        zero_rows((jnp.ones((3, 2)),), [True, False])
    with pytest.raises(ParameterError, match="statebatch result"):
        BatchSource(np.ones((3, 4)))
    with pytest.raises(ParameterError, match="'epoch' and 'batch'"):
        LaneIterator(arranged).load_state_dict({"epoch": 0})
    w = sb.make_windows(vowels, timesteps=5, batch_size=16)
    with pytest.raises(ParameterError, match="split by batch"):
        BatchSource(w, num_replicas=2, rank=0)
    with pytest.raises(ParameterError, match="outside"):
        BatchSource(w)[10**6]
