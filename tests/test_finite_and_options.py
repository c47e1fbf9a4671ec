"""NaN and inf are refused and allowed separately (issue 23), and as_series takes InputOptions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import statebatch as sb
from statebatch.errors import DataValueError, ParameterError
from statebatch.sources.series import as_series, check_finite_series


def _series(nan: bool, inf: bool) -> np.ndarray:
    x = np.arange(20.0).reshape(10, 2)
    if nan:
        x[3, 1] = np.nan
    if inf:
        x[6, 0] = -np.inf
    return x


@pytest.mark.parametrize("nan, inf", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("allow_nan, allow_inf", [(False, False), (True, False), (False, True), (True, True)])
def test_nan_and_inf_are_refused_unless_each_is_allowed(nan, inf, allow_nan, allow_inf):
    ss = as_series(_series(nan, inf))
    refused = [name for name, present, allowed in (("NaN", nan, allow_nan), ("inf", inf, allow_inf))
               if present and not allowed]
    if not refused:
        check_finite_series(ss, allow_nan=allow_nan, allow_inf=allow_inf)
        return
    with pytest.raises(DataValueError) as info:
        check_finite_series(ss, allow_nan=allow_nan, allow_inf=allow_inf)
    text = str(info.value)
    first = {"NaN": 3, "inf": 6}[refused[0]] if len(refused) == 1 else 3
    assert f"the first at step {first};" in text
    for name in ("NaN", "inf"):  # each refused kind is named with its own fix; an allowed one is not
        assert (f"1 {name} value(s)" in text) == (name in refused)
        assert (f"allow_{name.lower()}=True" in text) == (name in refused)


def test_target_columns_are_checked_with_the_same_options():
    df = pd.DataFrame({"x": np.arange(6.0), "y": [0.0, 1.0, np.inf, 3.0, 4.0, 5.0]})
    ss = as_series(df, feature_cols=["x"], target_cols=["y"])
    with pytest.raises(DataValueError, match="target columns has 1 inf value"):
        check_finite_series(ss, allow_nan=True)
    check_finite_series(ss, allow_inf=True)


def test_as_series_takes_input_options_or_the_same_keywords():
    df = pd.DataFrame({"id": [1, 1, 2, 2, 2], "t": [1, 0, 2, 0, 1], "v": np.arange(5.0)})
    by_options = as_series(df, options=sb.InputOptions(id_col="id", time_col="t", dtype="float32"))
    by_keywords = as_series(df, id_col="id", time_col="t", dtype="float32")
    assert by_options.ids == by_keywords.ids == [1, 2] and by_options.dtype == np.float32
    np.testing.assert_array_equal(by_options.source.read(0, 5), by_keywords.source.read(0, 5))
    np.testing.assert_array_equal(by_options.source.read(0, 5)[:, 0], [1.0, 0.0, 3.0, 4.0, 2.0])
    with pytest.raises(ParameterError, match="id_col is given twice"):
        as_series(df, options=sb.InputOptions(id_col="id"), id_col="t")
    with pytest.raises(ParameterError, match="only apply to a DataFrame"):
        as_series(np.zeros(4), options=sb.InputOptions(id_col="id"))


def _message(exc) -> str:
    return f"{exc.problem} Fix: {exc.fix}"


def test_an_inf_only_message_speaks_of_inf_not_of_a_nan_loss():
    # the series check, the array check (validate), forecasting windows, both pad values: each with inf only
    from statebatch.checking.checks import check_finite

    x = _series(nan=False, inf=True)
    with pytest.raises(DataValueError) as series_err:
        check_finite_series(as_series(x))
    with pytest.raises(DataValueError) as array_err:
        check_finite(x[None])
    df = pd.DataFrame({"id": 0, "t": np.arange(10), "y": x[:, 0], "k": 1.0})
    with pytest.raises(DataValueError) as forecast_err:
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k"])
    for err in (series_err, array_err, forecast_err):
        text = _message(err.value)
        assert "1 inf value(s)" in text and "0 NaN" not in text and "NaN value" not in text, text
        assert "into a NaN loss" not in text and "into an inf or NaN loss" in text, text
        assert "missing='mask'" not in text or "by NaN for missing='mask'" in text, text  # mask does not take inf
    from statebatch.sklearn import WindowTransformer

    with pytest.raises(DataValueError) as sk_err:  # scikit-learn's own check, re-raised with a fix for inf
        WindowTransformer(timesteps=3).fit_transform(x)
    assert "infinit" in sk_err.value.fix and "NaN loss" not in sk_err.value.fix.replace("inf or NaN loss", "")
    with pytest.raises(ParameterError, match=r"inf x 0 is NaN"):
        sb.arrange_stateful(np.arange(10.0), 2, 2, pad_value=np.inf)
    with pytest.raises(ParameterError, match=r"an inf input"):
        sb.bucket_batches([np.zeros(3), np.zeros(5)], batch_size=2, pad_value=np.inf)


def test_a_nan_only_message_still_says_nan_and_offers_the_nan_fixes():
    from statebatch.checking.checks import check_finite

    x = _series(nan=True, inf=False)
    with pytest.raises(DataValueError) as array_err:
        check_finite(x[None])
    text = _message(array_err.value)
    assert "1 NaN value(s)" in text and "inf" not in text and "a NaN loss" in text and "interpolate" in text
    df = pd.DataFrame({"id": 0, "t": np.arange(10), "y": x[:, 1], "k": 1.0})
    with pytest.raises(DataValueError) as forecast_err:
        sb.make_windows(df, 3, id_col="id", time_col="t", target_cols=["y"], known_cols=["k"])
    text = _message(forecast_err.value)
    assert "1 NaN value(s)" in text and "missing='mask'" in text and "inf" not in text, text
