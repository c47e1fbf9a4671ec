"""Bad-input census of statebatch.torch (issue 22): every public class and function of the torch adapter,
given the inputs a new user gets wrong, raises a statebatch error (a ValueError/TypeError subclass with a
``Fix:`` line) at the call that received them; nothing foreign escapes and nothing is silently wrong.
"""

import numpy as np
import pytest
import torch

import statebatch as sb
from statebatch import torch as sbt
from statebatch.errors import StatebatchError


def _series(n=5, lo=10, hi=40, features=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((int(k), features)).astype(np.float32) for k in rng.integers(lo, hi, n)]


ARRANGED = sb.arrange_stateful(_series(), 4, 3, shuffle=True, seed=1)
WINDOWS = sb.make_windows(_series(n=1)[0], 5, targets="next", batch_size=4)
BUCKETING = sb.bucket_batches(_series(n=8), 3, seed=0)
H = torch.ones(2, 3, 4)  # an nn.LSTM-like state: (layers, lanes=3, hidden)


def _carrier_with_state():
    c = sbt.StateCarrier()
    c.update((H.clone(), H.clone()))
    return c


def _loaded(loader_state_change):
    loader = sbt.LaneLoader(ARRANGED)
    state = loader.state_dict()
    loader_state_change(state)
    return lambda: sbt.LaneLoader(ARRANGED).load_state_dict(state)


def _other_arrangement_state():
    other = sb.arrange_stateful(_series(), 4, 3, shuffle=True, seed=2)  # another seed: other packings
    return sbt.LaneLoader(other).state_dict()


def _items(*xs, ys=None, idx=None):
    ys = ys or [None] * len(xs)
    idx = idx or list(range(len(xs)))
    return list(zip(xs, ys, idx))


F32 = torch.zeros(4, 2)
CASES = [
    # -- LaneLoader: every argument checked at construction
    ("loader_cuda_index_absent", lambda: sbt.LaneLoader(ARRANGED, device="cuda:99"), "device"),
    ("loader_meta_device", lambda: sbt.LaneLoader(ARRANGED, device="meta"), "meta"),
    ("loader_device_float", lambda: sbt.LaneLoader(ARRANGED, device=3.5), "device"),
    ("loader_device_bool", lambda: sbt.LaneLoader(ARRANGED, device=True), "device"),
    ("loader_device_list", lambda: sbt.LaneLoader(ARRANGED, device=["cpu"]), "device"),
    ("loader_device_unknown", lambda: sbt.LaneLoader(ARRANGED, device="no-such-device"), "device"),
    ("loader_device_xpu_absent", lambda: sbt.LaneLoader(ARRANGED, device="xpu"), "device"),
    ("loader_prefetch_negative", lambda: sbt.LaneLoader(ARRANGED, prefetch=-1), "prefetch"),
    ("loader_prefetch_float", lambda: sbt.LaneLoader(ARRANGED, prefetch=1.5), "prefetch"),
    ("loader_prefetch_bool", lambda: sbt.LaneLoader(ARRANGED, prefetch=True), "prefetch"),
    ("loader_prefetch_str", lambda: sbt.LaneLoader(ARRANGED, prefetch="2"), "prefetch"),
    ("loader_validation_str", lambda: sbt.LaneLoader(ARRANGED, validation="yes"), "validation"),
    ("loader_reset_int", lambda: sbt.LaneLoader(ARRANGED, reset_on_epoch_begin=1), "reset_on_epoch_begin"),
    ("loader_pin_str", lambda: sbt.LaneLoader(ARRANGED, pin_memory="no"), "pin_memory"),
    ("loader_shuffle_none", lambda: sbt.LaneLoader(ARRANGED, shuffle=None), "shuffle"),
    ("loader_shuffle_true", lambda: sbt.LaneLoader(ARRANGED, shuffle=True), "repack"),
    ("loader_of_windows", lambda: sbt.LaneLoader(WINDOWS), "arrange_stateful"),
    ("loader_of_array", lambda: sbt.LaneLoader(np.zeros((10, 3))), "arrange_stateful"),
    ("loader_set_epoch_negative", lambda: sbt.LaneLoader(ARRANGED).set_epoch(-1), "epoch"),
    ("loader_set_epoch_float", lambda: sbt.LaneLoader(ARRANGED).set_epoch(1.0), "epoch"),
    # -- LaneLoader.load_state_dict
    ("loader_state_not_dict", lambda: sbt.LaneLoader(ARRANGED).load_state_dict([0, 1]), "state_dict"),
    ("loader_state_missing_keys", lambda: sbt.LaneLoader(ARRANGED).load_state_dict({"epoch": 0}), "state_dict"),
    ("loader_state_epoch_negative", _loaded(lambda s: s.update(epoch=-1)), "epoch"),
    ("loader_state_batch_float", _loaded(lambda s: s.update(batch=1.0)), "batch"),
    ("loader_state_batch_beyond", _loaded(lambda s: s.update(batch=10**6)), "beyond"),
    ("loader_state_other_arrangement",
     lambda: sbt.LaneLoader(ARRANGED).load_state_dict(_other_arrangement_state()), "seed"),
    ("loader_state_other_validation", _loaded(lambda s: s.update(validation=True)), "validation"),
    # -- StateCarrier
    ("carrier_batch_dim_str", lambda: sbt.StateCarrier(batch_dim="1"), "batch_dim"),
    ("carrier_batch_dim_float", lambda: sbt.StateCarrier(batch_dim=1.0), "batch_dim"),
    ("zero_rows_negative", lambda: _carrier_with_state().zero(rows=[-1]), "negative"),
    ("zero_rows_beyond", lambda: _carrier_with_state().zero(rows=[5]), "outside"),
    ("zero_rows_bool_mask", lambda: _carrier_with_state().zero(rows=[True, False, True]), "flatnonzero"),
    ("zero_rows_float", lambda: _carrier_with_state().zero(rows=[0.0]), "integer"),
    ("zero_rows_float_scalar", lambda: _carrier_with_state().zero(rows=1.5), "integer"),
    ("zero_rows_str", lambda: _carrier_with_state().zero(rows="0"), "lane indices"),
    ("zero_rows_set", lambda: _carrier_with_state().zero(rows={0, 1}), "lane indices"),
    ("zero_rows_2d", lambda: _carrier_with_state().zero(rows=[[0], [1]]), "flat"),
    ("zero_rows_ragged", lambda: _carrier_with_state().zero(rows=[[0], [1, 2]]), "lane indices"),
    ("zero_rows_negative_on_zero_state", lambda: sbt.StateCarrier().zero(rows=[-1]), "negative"),
    ("carrier_call_int_reset", lambda: _carrier_with_state()([0, 1, 0]), "boolean"),
    ("carrier_call_str_reset", lambda: _carrier_with_state()("abc"), "boolean"),
    ("carrier_call_wrong_lanes", lambda: _carrier_with_state()(torch.zeros(5, dtype=torch.bool)), "lanes"),
    ("carrier_update_str", lambda: sbt.StateCarrier().update("abc"), "tensors"),
    ("carrier_update_mixed_lanes", lambda: sbt.StateCarrier().update((torch.ones(1, 3, 2), torch.ones(1, 4, 2))),
     "lane counts"),
    ("carrier_update_no_lane_axis", lambda: sbt.StateCarrier().update(torch.ones(3)), "axis"),
    ("carrier_restore_garbage", lambda: sbt.StateCarrier().restore("x"), "snapshot"),
    ("carrier_restore_bad_state", lambda: sbt.StateCarrier().restore(("state", "abc")), "tensors"),
    ("carrier_load_not_dict", lambda: sbt.StateCarrier().load_state_dict(H), "state_dict"),
    ("carrier_load_other_batch_dim",
     lambda: sbt.StateCarrier(batch_dim=0).load_state_dict(_carrier_with_state().state_dict()), "batch_dim"),
    ("carrier_load_non_tensor", lambda: sbt.StateCarrier().load_state_dict({"batch_dim": 1, "state": [1, 2]}),
     "tensors"),
    ("carrier_load_mixed_lanes", lambda: sbt.StateCarrier().load_state_dict(
        {"batch_dim": 1, "state": (torch.ones(1, 3, 2), torch.ones(1, 2, 2))}), "lane counts"),
    ("carrier_validation_of_windows", lambda: sbt.StateCarrier().validation(WINDOWS).__enter__(), "arrange_stateful"),
    # -- carry / detach_state
    ("carry_state_str", lambda: sbt.carry("abc", torch.zeros(3, dtype=torch.bool)), "tensors"),
    ("carry_reset_str", lambda: sbt.carry(H, "abc"), "boolean"),
    ("carry_reset_ints", lambda: sbt.carry(H, [0, 1, 0]), "boolean"),
    ("carry_reset_float_tensor", lambda: sbt.carry(H, torch.zeros(3)), "boolean"),
    ("carry_reset_2d", lambda: sbt.carry(H, np.zeros((3, 1), dtype=bool)), "1-D"),
    ("carry_reset_ragged", lambda: sbt.carry(H, [[True], [False, True]]), "mask"),
    ("carry_wrong_lanes", lambda: sbt.carry(H, np.zeros(5, dtype=bool)), "lanes"),
    ("carry_batch_dim_missing_axis", lambda: sbt.carry(H, np.zeros(3, dtype=bool), batch_dim=5), "axis"),
    ("carry_batch_dim_str", lambda: sbt.carry(H, np.zeros(3, dtype=bool), batch_dim="1"), "batch_dim"),
    ("detach_state_set", lambda: sbt.detach_state({H}), "tensors"),
    # -- to_tensor
    ("to_tensor_object", lambda: sbt.to_tensor(np.array([1, "a"], dtype=object)), "dtype"),
    ("to_tensor_strings", lambda: sbt.to_tensor(np.array(["a", "b"])), "dtype"),
    ("to_tensor_datetime", lambda: sbt.to_tensor(np.array(["2020-01-01"], dtype="datetime64[D]")), "dtype"),
    ("to_tensor_ragged", lambda: sbt.to_tensor([[1.0], [1.0, 2.0]]), "array"),
    ("to_tensor_none", lambda: sbt.to_tensor(None), "dtype"),
    ("to_tensor_dict", lambda: sbt.to_tensor({"a": 1}), "dtype"),
    # -- pad_collate
    ("collate_none", lambda: sbt.pad_collate(None), "list"),
    ("collate_str", lambda: sbt.pad_collate("abc"), "list"),
    ("collate_tensor", lambda: sbt.pad_collate(torch.zeros(3, 4, 2)), "list"),
    ("collate_empty", lambda: sbt.pad_collate([]), "empty"),
    ("collate_item_arity", lambda: sbt.pad_collate([(F32,)]), "(x, y, index)"),
    ("collate_item_tensor", lambda: sbt.pad_collate([F32, F32]), "(x, y, index)"),
    ("collate_padding_middle", lambda: sbt.pad_collate(_items(F32), padding="middle"), "padding"),
    ("collate_padding_int", lambda: sbt.pad_collate(_items(F32), padding=1), "padding"),
    ("collate_pad_value_str", lambda: sbt.pad_collate(_items(F32), pad_value="0"), "pad_value"),
    ("collate_pad_value_none", lambda: sbt.pad_collate(_items(F32), pad_value=None), "pad_value"),
    ("collate_per_step_str", lambda: sbt.pad_collate(_items(F32), per_step="yes"), "per_step"),
    ("collate_feature_mismatch", lambda: sbt.pad_collate(_items(torch.zeros(4, 2), torch.zeros(3, 5))), "shape"),
    ("collate_dtype_mismatch",
     lambda: sbt.pad_collate(_items(torch.zeros(4, 2, dtype=torch.int64), torch.full((3, 2), 0.7))), "dtype"),
    ("collate_int_pad_fraction", lambda: sbt.pad_collate(_items(torch.zeros(4, 2, dtype=torch.int64)), pad_value=0.5),
     "pad_value"),
    ("collate_index_float", lambda: sbt.pad_collate(_items(F32, idx=[1.5])), "index"),
    ("collate_index_str", lambda: sbt.pad_collate(_items(F32, idx=["a"])), "index"),
    ("collate_x_strings", lambda: sbt.pad_collate(_items(np.array([["a"], ["b"]]))), "dtype"),
    ("collate_mixed_targets", lambda: sbt.pad_collate(_items(F32, F32, ys=[torch.zeros(1), None])), "target"),
    ("collate_target_dtypes",
     lambda: sbt.pad_collate(_items(F32, F32, ys=[torch.zeros(1), torch.zeros(1, dtype=torch.int64)])), "dtype"),
    # -- datasets: items and batches of indices
    ("sequence_dataset_of_array", lambda: sbt.SequenceDataset(np.zeros((3, 4))), "bucket_batches"),
    ("sequence_item_str", lambda: sbt.SequenceDataset(BUCKETING)["a"], "integer"),
    ("sequence_item_float", lambda: sbt.SequenceDataset(BUCKETING)[1.0], "integer"),
    ("sequence_item_beyond", lambda: sbt.SequenceDataset(BUCKETING)[100], "outside"),
    ("sequence_items_float", lambda: sbt.SequenceDataset(BUCKETING).__getitems__([0.5]), "integer"),
    ("sequence_items_bool", lambda: sbt.SequenceDataset(BUCKETING).__getitems__([True, False]), "integer"),
    ("sequence_items_ragged", lambda: sbt.SequenceDataset(BUCKETING).__getitems__([[0, 1], [2]]), "flat"),
    ("sequence_items_2d", lambda: sbt.SequenceDataset(BUCKETING).__getitems__([[0, 1], [2, 3]]), "flat"),
    ("sequence_items_int", lambda: sbt.SequenceDataset(BUCKETING).__getitems__(5), "list"),
    ("window_dataset_of_arranged", lambda: sbt.WindowDataset(ARRANGED), "make_windows"),
    ("window_item_float", lambda: sbt.WindowDataset(WINDOWS)[2.0], "integer"),
    ("window_item_beyond", lambda: sbt.WindowDataset(WINDOWS)[10**6], "outside"),
    ("window_items_str", lambda: sbt.WindowDataset(WINDOWS).__getitems__("ab"), "list"),
    ("window_items_float_tensor", lambda: sbt.WindowDataset(WINDOWS).__getitems__(torch.tensor([0.0, 1.0])),
     "integer"),
    ("window_items_beyond", lambda: sbt.WindowDataset(WINDOWS).__getitems__([0, 10**6]), "outside"),
    # -- samplers
    ("bucket_sampler_no_batch_size", lambda: sbt.BucketBatchSampler([3, 4, 5]), "batch_size"),
    ("bucket_sampler_batch_size_zero", lambda: sbt.BucketBatchSampler([3, 4, 5], 0), "batch_size"),
    ("bucket_sampler_rank_beyond", lambda: sbt.BucketBatchSampler([3, 4, 5], 2, num_replicas=2, rank=2, seed=0),
     "rank"),
    ("bucket_sampler_replicas_zero", lambda: sbt.BucketBatchSampler([3, 4, 5], 2, num_replicas=0, seed=0),
     "num_replicas"),
    ("bucket_sampler_replicas_no_seed", lambda: sbt.BucketBatchSampler([3, 4, 5], 2, num_replicas=2, rank=0),
     "seed"),
    ("bucket_sampler_unknown_option", lambda: sbt.BucketBatchSampler([3, 4, 5], 2, colour="red"), "option"),
    ("bucket_sampler_bucketing_and_batch_size", lambda: sbt.BucketBatchSampler(BUCKETING, 4), "Bucketing"),
    ("bucket_sampler_negative_length", lambda: sbt.BucketBatchSampler([3, -4, 5], 2), "length"),
    ("bucket_sampler_state_other_seed", lambda: sbt.BucketBatchSampler([3, 4, 5, 6], 2, seed=0).load_state_dict(
        sbt.BucketBatchSampler([3, 4, 5, 6], 2, seed=1).state_dict()), "seed"),
    ("bucket_sampler_state_garbage", lambda: sbt.BucketBatchSampler(BUCKETING).load_state_dict("x"), "state_dict"),
    ("bucket_sampler_set_epoch_negative", lambda: sbt.BucketBatchSampler(BUCKETING).set_epoch(-2), "epoch"),
    ("window_sampler_of_array", lambda: sbt.WindowBatchSampler(np.zeros((10, 2))), "make_windows"),
    ("window_sampler_state_beyond", lambda: sbt.WindowBatchSampler(WINDOWS).load_state_dict(
        {**sbt.WindowBatchSampler(WINDOWS).state_dict(), "batch": 10**6}), "beyond"),
    ("window_sampler_state_other_windows", lambda: sbt.WindowBatchSampler(WINDOWS).load_state_dict(
        sbt.WindowBatchSampler(sb.make_windows(_series(n=1)[0], 5, targets="next", batch_size=8)).state_dict()),
     "batch_size"),
    ("even_batches_not_a_plan", lambda: sbt.even_batches(None, 2), "plan_buckets"),
    ("even_batches_zero_replicas", lambda: sbt.even_batches(BUCKETING.plan(0), 0), "num_replicas"),
]


@pytest.mark.parametrize("name,call,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_statebatch_error_with_a_fix(name, call, words):
    with pytest.raises(StatebatchError) as info:
        call()
    e = info.value
    assert isinstance(e, (ValueError, TypeError)), type(e).__mro__
    assert "Fix:" in str(e) and e.fix
    assert words.lower() in str(e).lower(), str(e)


def test_cuda_device_without_cuda_is_refused_at_construction_not_at_the_first_batch():
    if torch.cuda.is_available():
        sbt.LaneLoader(ARRANGED, device="cuda:0")  # a real device is accepted
    else:
        with pytest.raises(sb.ParameterError, match="no CUDA device"):
            sbt.LaneLoader(ARRANGED, device="cuda:3")
    loader = sbt.LaneLoader(ARRANGED, device=torch.device("cpu"))
    assert all(b.x.device.type == "cpu" for b in loader)


def test_zero_rows_zeroes_exactly_those_lanes():
    c = _carrier_with_state()
    c.zero(rows=[2])
    h, cc = c.state
    assert not h[:, 2].any() and not cc[:, 2].any() and h[:, :2].eq(1).all() and cc[:, :2].eq(1).all()
    c = _carrier_with_state()
    c.zero(rows=np.int64(0))  # one lane as an integer scalar
    assert not c.state[0][:, 0].any() and c.state[0][:, 1:].eq(1).all()
    c = _carrier_with_state()
    c.zero(rows=torch.tensor([0, 1]))
    assert c.state[0][:, :2].eq(0).all() and c.state[0][:, 2].eq(1).all()
    c = _carrier_with_state()
    c.zero(rows=[])  # no lane: nothing changes
    assert c.state[0].eq(1).all()
    c.zero()  # every lane: the zero state
    assert c.state is None


def test_pad_collate_keeps_integer_sequences_exact_and_pads_with_an_integer():
    xs = [torch.tensor([[1], [2], [3]]), torch.tensor([[4]])]
    b = sbt.pad_collate(_items(*xs), pad_value=-1)
    assert b.x.dtype == torch.int64
    np.testing.assert_array_equal(b.x[:, :, 0].numpy(), [[1, 2, 3], [4, -1, -1]])


def test_to_tensor_accepts_every_dtype_torch_holds_and_passes_tensors_through():
    for dt in ["bool", "int8", "uint8", "int16", "uint16", "int32", "int64", "float16", "float32", "float64",
               "complex64"]:
        a = np.arange(6).reshape(2, 3).astype(dt)
        np.testing.assert_array_equal(sbt.to_tensor(a).numpy(), a)
    t = torch.ones(2)
    assert sbt.to_tensor(t) is t
    big = np.arange(4, dtype=">i4")  # big-endian: converted to native order, values kept
    np.testing.assert_array_equal(sbt.to_tensor(big).numpy(), [0, 1, 2, 3])
