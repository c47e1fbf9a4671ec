"""Census, part 2: every public entry point with wrong arguments, lookups and files.

Each case gets a statebatch error (a ValueError/TypeError subclass whose message ends with the fix)
or a checked correct result; nothing foreign escapes.
"""

import pathlib
import tempfile
import warnings

import numpy as np
import pandas as pd
import pytest

import statebatch as sb
import statebatch.keras as sk
from statebatch.errors import (BatchIndexError, DataValueError, DTypeError, LengthMismatchError, ModelMismatchError,
                               ParameterError, ShapeError, ShuffleError, StatebatchError, StatefulLayoutError,
                               StoreError)
from statebatch.sklearn import NotFittedError, StatefulTransformer, WindowTransformer, time_split, transform_xy
from statebatch.sources.npy import BatchShards, NpyStore, ShardedStore, StoredSeries, write_batches, write_npy

warnings.simplefilter("ignore", sb.StatebatchWarning)
x = np.arange(40.0)
X3 = np.zeros((64, 5, 1))
d = pathlib.Path(tempfile.mkdtemp(prefix="statebatch-census-"))
(d / "junk.npy").write_text("junk")
w = sb.make_windows(x, 4, batch_size=8)
a = sb.arrange_stateful(x, 4, 2)
seqs = [np.zeros((n, 1)) for n in (3, 5, 8, 2)]
bk = sb.bucket_batches(seqs, 2, seed=0)

CASES = [
    ("explain shape str", lambda: sb.explain("abc"), ParameterError),
    ("explain 2d", lambda: sb.explain((10,5)), ParameterError),
    ("explain neg", lambda: sb.explain((10,-5,1)), ParameterError),
    ("explain batch 0", lambda: sb.explain((10,5,1),batch_size=0), ParameterError),
    ("explain batch float", lambda: sb.explain((10,5,1),batch_size=2.5), ParameterError),
    ("explain stateful str", lambda: sb.explain((10,5,1),stateful="yes"), ParameterError),
    ("validate 2d", lambda: sb.validate(np.zeros((10,5))), ShapeError),
    ("validate list", lambda: sb.validate([[1,2]]), ShapeError),
    ("validate y len", lambda: sb.validate(X3, np.zeros(10)), LengthMismatchError),
    ("validate sw len", lambda: sb.validate(X3, np.zeros(64), sample_weight=np.zeros(3)), LengthMismatchError),
    ("validate bs str", lambda: sb.validate(X3, batch_size="32"), ParameterError),
    ("validate nan", lambda: sb.validate(np.full((4,2,1),np.nan)), DataValueError),
    ("validate empty", lambda: sb.validate(np.zeros((0,5,1))), DataValueError),
    ("validate object", lambda: sb.validate(np.array([[[None]]])), DTypeError),
    ("plan_windows neg T", lambda: sb.plan_windows([10],-1), ParameterError),
    ("plan_windows T0", lambda: sb.plan_windows([10],0), ParameterError),
    ("plan_windows lengths str", lambda: sb.plan_windows("abc",2), ParameterError),
    ("plan_windows empty", lambda: sb.plan_windows([],2), ParameterError),
    ("plan_windows stride 0", lambda: sb.plan_windows([10],2,stride=0), ParameterError),
    ("plan_lanes T0", lambda: sb.plan_lanes([10],0,1), ParameterError),
    ("plan_lanes B0", lambda: sb.plan_lanes([10],2,0), ParameterError),
    ("plan_lanes float lengths", lambda: sb.plan_lanes([10.5],2,1), ParameterError),
    ("plan_lanes jitter>=T", lambda: sb.plan_lanes([10],3,1,jitter=3,seed=0), ParameterError),
    ("plan_lanes jitter no seed", lambda: sb.plan_lanes([10],3,1,jitter=1), ParameterError),
    ("plan_lanes jitter drop", lambda: sb.plan_lanes([10],3,1,jitter=1,seed=0,tail="drop"), ParameterError),
    ("plan_buckets mode", lambda: sb.plan_buckets([3,4],2,mode="x",seed=0), ParameterError),
    ("plan_buckets no seed", lambda: sb.plan_buckets([3,4],2), ParameterError),
    ("plan_buckets bin_width neg", lambda: sb.plan_buckets([3,4],2,seed=0,bin_width=-1), ParameterError),
    ("plan_buckets buckets no bounds", lambda: sb.plan_buckets([3,4],2,mode="buckets",seed=0), ParameterError),
    ("plan_buckets unsorted bounds", lambda: sb.plan_buckets([3,4],2,mode="buckets",boundaries=[5,3],seed=0), ParameterError),
    ("plan_buckets pad_to bucket sort", lambda: sb.plan_buckets([3,4],2,pad_to="bucket",seed=0), ParameterError),
    ("plan_buckets zero length", lambda: sb.plan_buckets([0,4],2,seed=0), ParameterError),
    ("retention different", lambda: sb.retention(sb.plan_buckets([3,4],1,seed=0), sb.plan_buckets([3,4,5],1,seed=0)), ParameterError),
    ("retention junk", lambda: sb.retention(1,2), ParameterError),
    ("padding_of bad bounds", lambda: sb.padding_of([3,4],"x"), ParameterError),
    ("bucket_boundaries empty", lambda: sb.bucket_boundaries([]), ParameterError),
    ("bucket_boundaries neg", lambda: sb.bucket_boundaries([-1,3]), ParameterError),
    ("take bool wrong len", lambda: w.take(np.array([True,False])), ParameterError),
    ("take float", lambda: w.take([1.5]), ParameterError),
    ("take str", lambda: w.take("a"), ParameterError),
    ("take 2d", lambda: w.take([[1,2]]), ParameterError),
    ("batch -1", lambda: w.batch(-1), ParameterError),
    ("batch 99", lambda: w.batch(99), ParameterError),
    ("batch epoch -1", lambda: w.batch(0,epoch=-1), ParameterError),
    ("set_epoch str", lambda: w.set_epoch("1"), ParameterError),
    ("unbatch wrong rows", lambda: w.unbatch(np.zeros((3,1))), LengthMismatchError),
    ("unbatch list wrong", lambda: w.unbatch([np.zeros(3)]), LengthMismatchError),
    ("a.split 0", lambda: a.split(0), ParameterError),
    ("a.split 1", lambda: a.split(1.0), ParameterError),
    ("a.split nan", lambda: a.split(float("nan")), ParameterError),
    ("a.provenance lane", lambda: a.provenance(0,5), ParameterError),
    ("a.provenance batch", lambda: a.provenance(99,0), ParameterError),
    ("a.unbatch wrong", lambda: a.unbatch(np.zeros((3,4,1))), LengthMismatchError),
    ("a.unbatch str", lambda: a.unbatch("x"), LengthMismatchError),
    ("bk.batch 99", lambda: bk.batch(99), ParameterError),
    ("bk.materialise oob", lambda: bk.materialise([5]), ParameterError),
    ("bk.unbatch wrong", lambda: bk.unbatch([np.zeros(2)]), LengthMismatchError),
    ("make_windows T str", lambda: sb.make_windows(x,"4"), ParameterError),
    ("make_windows stride neg", lambda: sb.make_windows(x,4,stride=-1), ParameterError),
    ("make_windows sampling 0", lambda: sb.make_windows(x,4,sampling_rate=0), ParameterError),
    ("make_windows start>end", lambda: sb.make_windows(x,4,start_index=30,end_index=10), ParameterError),
    ("make_windows targets str", lambda: sb.make_windows(x,4,targets="prev"), ParameterError),
    ("make_windows targets longer", lambda: sb.make_windows(x,4,targets=np.zeros(50)), LengthMismatchError),
    ("make_windows remainder", lambda: sb.make_windows(x,4,remainder="x"), ParameterError),
    ("make_windows shuffle str", lambda: sb.make_windows(x,4,shuffle="yes"), ParameterError),
    ("make_windows seed neg", lambda: sb.make_windows(x,4,seed=-1), ParameterError),
    ("make_windows dtype junk", lambda: sb.make_windows(x,4,dtype="junk"), ParameterError),
    ("make_windows dtype str->float32", lambda: sb.make_windows(x,4,dtype="float32").X.dtype, lambda r: str(r) == 'float32'),
    ("make_windows None", lambda: sb.make_windows(None,4), DTypeError),
    ("make_windows scalar", lambda: sb.make_windows(3.0,4), ShapeError),
    ("make_windows 3d", lambda: sb.make_windows(np.zeros((5,4,3)),2), ShapeError),
    ("make_windows empty", lambda: sb.make_windows(np.zeros((0,2)),2), DataValueError),
    ("make_windows dict", lambda: sb.make_windows({"a":[1,2]},2), DTypeError),
    ("make_windows bool", lambda: sb.make_windows(np.array([True,False,True]),2), lambda r: r.X.dtype == bool and r.X.shape == (2, 2, 1)),
    ("make_windows str arr", lambda: sb.make_windows(np.array(["a","b","c"]),2), DTypeError),
    ("make_windows id_col array", lambda: sb.make_windows(x,2,id_col="id"), ParameterError),
    ("make_windows id_col missing", lambda: sb.make_windows(pd.DataFrame({"v":x}),2,id_col="id"), ParameterError),
    ("make_windows feature_cols missing", lambda: sb.make_windows(pd.DataFrame({"v":x}),2,feature_cols=["w"]), ParameterError),
    ("make_windows target_features oob", lambda: sb.make_windows(np.zeros((10,2)),2,targets="next",target_features=[5]), ParameterError),
    ("make_windows target_features with arr", lambda: sb.make_windows(x,2,targets=x,target_features=[0]), ParameterError),
    ("arrange T>len", lambda: sb.arrange_stateful(x,100,1), lambda r: r.X.shape == (1, 100, 1) and r.sample_weight.sum() == 39),
    ("arrange B str", lambda: sb.arrange_stateful(x,4,"2"), ParameterError),
    ("arrange pad_value str", lambda: sb.arrange_stateful(x,4,2,pad_value="z"), ParameterError),
    ("arrange targets str", lambda: sb.arrange_stateful(x,4,2,targets="prev"), ParameterError),
    ("arrange targets short", lambda: sb.arrange_stateful(x,4,2,targets=np.zeros(10)), LengthMismatchError),
    ("arrange many targets len", lambda: sb.arrange_stateful([x,x],4,2,targets=[x]), LengthMismatchError),
    ("arrange horizon 0", lambda: sb.arrange_stateful(x,4,2,horizon=0), ParameterError),
    ("arrange jitter no seed ok", lambda: sb.arrange_stateful(x,4,2,jitter=1).n_batches, lambda r: r >= 5),
    ("arrange shuffle one series", lambda: sb.arrange_stateful(x,4,2,shuffle=True).n_batches, lambda r: r == 5),
    ("bucket batch 0", lambda: sb.bucket_batches(seqs,0), ParameterError),
    ("bucket padding", lambda: sb.bucket_batches(seqs,2,padding="mid"), ParameterError),
    ("bucket pad_value str", lambda: sb.bucket_batches(seqs,2,pad_value="z"), ParameterError),
    ("bucket targets wrong len", lambda: sb.bucket_batches(seqs,2,targets=np.zeros(3)), LengthMismatchError),
    ("bucket return_seq not list", lambda: sb.bucket_batches(seqs,2,targets=np.zeros(4),return_sequences=True), LengthMismatchError),
    ("bucket empty seq", lambda: sb.bucket_batches([np.zeros((0,1)),np.zeros((3,1))],2), ParameterError),
    ("bucket one seq", lambda: sb.bucket_batches(np.zeros((5,1)),2), ShapeError),
    ("bucket n_buckets sort", lambda: sb.bucket_batches(seqs,2,n_buckets=3), ParameterError),
    ("bucket drop all", lambda: sb.bucket_batches(seqs,8,remainder="drop",seed=0), ParameterError),
    ("bucket exact drop small", lambda: sb.bucket_batches(seqs,2,mode="exact",remainder="drop",seed=0), ParameterError),
    ("StatefulDataset list", lambda: sk.StatefulDataset([1]), ParameterError),
    ("WindowDataset arranged", lambda: sk.WindowDataset(a), ParameterError),
    ("BucketDataset windows", lambda: sk.BucketDataset(w), ParameterError),
    ("StatefulDataset oob", lambda: sk.StatefulDataset(a)[99], BatchIndexError),
    ("StatefulDataset out of order", lambda: (lambda ds: (ds[0], ds[2]))(sk.StatefulDataset(a)), ShuffleError),
    ("StatefulDataset multiprocessing", lambda: sk.StatefulDataset(a, use_multiprocessing=True), ParameterError),
    ("LaneResetCallback junk", lambda: sk.LaneResetCallback([1]), ParameterError),
    ("reset_rows junk", lambda: sk.reset_rows("model"), ModelMismatchError),
    ("to_tf_dataset junk", lambda: sk.to_tf_dataset([1,2]), ParameterError),
    ("fit_stateful junk model", lambda: sk.fit_stateful("m", a), StatefulLayoutError),
    ("check_model junk", lambda: sk.check_model("m", a), StatefulLayoutError),
    ("WT timesteps 0", lambda: WindowTransformer(0).fit(np.zeros((10,1))), ParameterError),
    ("WT horizon -1", lambda: WindowTransformer(2,horizon=-1).fit(np.zeros((10,1))), ParameterError),
    ("WT transform before fit", lambda: WindowTransformer(2).transform(np.zeros((10,1))), NotFittedError),
    ("WT feature mismatch", lambda: WindowTransformer(2).fit(np.zeros((10,1))).transform(np.zeros((10,2))), ShapeError),
    ("ST batch 0", lambda: StatefulTransformer(2,0).fit(np.zeros((10,1))), ParameterError),
    ("time_split bad", lambda: time_split(np.zeros(10),val=0.6,test=0.6), ParameterError),
    ("time_split gap neg", lambda: time_split(np.zeros(10),gap=-1), ParameterError),
    ("time_split tiny", lambda: time_split(np.zeros(2),val=0.4,test=0.4), ParameterError),
    ("transform_xy junk", lambda: transform_xy("pipe", x, x), ParameterError),
    ("NpyStore junk", lambda: NpyStore(d/"junk.npy"), StoreError),
    ("NpyStore missing", lambda: NpyStore(d/"none.npy"), StoreError),
    ("NpyStore dir", lambda: NpyStore(d), StoreError),
    ("ShardedStore empty", lambda: ShardedStore([]), ParameterError),
    ("write_npy wrong rows", lambda: write_npy(d/"w.npy",[np.zeros((3,2))],(5,2),"float32"), ParameterError),
    ("write_batches junk", lambda: write_batches([1], d/"b"), ParameterError),
    ("BatchShards missing", lambda: BatchShards(d/"nobatches"), StoreError),
    ("StoredSeries mismatch", lambda: StoredSeries(store=NpyStore(write_npy(d/"s.npy",[np.zeros((5,1))],(5,1),"float32").path), ids=[0], lengths=[3]), StoreError),
    ("as_source junk", lambda: sb.as_source("junk"), ParameterError),
    ("ArraySource 0d", lambda: sb.ArraySource(np.float64(3)), ParameterError),
    ("plot_buckets junk", lambda: sb.plot_buckets("abc"), ParameterError),
]


@pytest.mark.parametrize("name,call,expected", CASES, ids=[c[0] for c in CASES])
def test_census_api(name, call, expected):
    if isinstance(expected, type) and issubclass(expected, StatebatchError):
        with pytest.raises(expected) as info:
            call()
        assert isinstance(info.value, (ValueError, TypeError)) and "Fix:" in str(info.value)
    else:
        assert expected(call())


def test_census_api_size():
    assert len(CASES) >= 100


def test_messages_print_plain_numbers_not_numpy_reprs():
    """numpy >= 2 reprs scalars as np.float64(72.0): messages show the value (series ids of numpy dtype too)."""
    df = pd.DataFrame({"id": np.repeat(np.array([5, 6], dtype=np.int64), 4), "t": np.tile(np.arange(4), 2),
                       "v": np.arange(8.0), "s": [1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 2.0, 2.0]})
    with pytest.raises(sb.DataValueError) as err:
        sb.make_windows(df, 2, id_col="id", time_col="t", target_cols=["v"], static_cols=["s"], n_ahead=1)
    assert "varies within series 6 (step 1 holds 3.0, its first step 2.0)" in str(err.value)
    assert "np." not in str(err.value)
    df.loc[6, "v"] = np.nan
    with pytest.raises(sb.DataValueError) as err:
        sb.make_windows(df[["id", "t", "v"]], 2, id_col="id", time_col="t")
    assert "series 6 step 2" in str(err.value) and "np." not in str(err.value)
