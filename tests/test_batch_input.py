"""evaluate_batch takes plans in every form a planner holds them, in any order, and
refuses what is not a plan by naming the row, the column and what is allowed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from strategies import mixtral_like

from pyengine import schema as S
from pyengine.engine import evaluate_batch, pack_plans
from pyengine.errors import SpecError
from pyengine.reference import evaluate
from pyengine.specs import Plan

MODEL, HW = mixtral_like()


def _codes(plans, **kw):
    return evaluate_batch(MODEL, HW, plans, backend="reference", **kw).codes


def test_scalars_broadcast_whatever_the_key_order():
    a = pack_plans({"global_batch": 512, "tp": [4, 8, 8]})
    b = pack_plans({"tp": [4, 8, 8], "global_batch": 512})
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, S.N_PLAN)
    assert (a[:, S.P_GLOBAL_BATCH] == 512).all()


def test_columns_of_different_lengths_are_refused_by_name():
    with pytest.raises(SpecError, match=r"plans\.dp = 'length 2'.*length 3"):
        pack_plans({"tp": [1, 2, 4], "dp": [1, 2]})


def test_dataframe_list_of_dicts_plan_and_plans_agree():
    rows = [{"tp": 2, "pp": 2, "global_batch": 64, "sequence_parallel": "True"},
            {"tp": 4, "pp": 1, "global_batch": 64, "sequence_parallel": "False"}]
    plans = [Plan(tp=2, pp=2, global_batch=64, sequence_parallel=True),
             Plan(tp=4, pp=1, global_batch=64, sequence_parallel=False)]
    want = pack_plans(plans)
    np.testing.assert_array_equal(pack_plans(rows), want)
    np.testing.assert_array_equal(pack_plans(pd.DataFrame(rows)), want)
    np.testing.assert_array_equal(pack_plans(plans[0]), want[:1])
    res = evaluate_batch(MODEL, HW, pd.DataFrame(rows), backend="reference")
    one = evaluate(MODEL, HW, plans[0])
    assert res["time_step_s"][0] == one.outputs["time_step_s"]


def test_boolean_strings_as_pandas_writes_them():
    block = pack_plans({"sequence_parallel": ["True", "False", "yes", "off", True, 0]})
    assert block[:, S.P_SEQUENCE_PARALLEL].tolist() == [1, 0, 1, 0, 1, 0]
    with pytest.raises(SpecError, match=r"plans\[1\]\.flash_attention = 'banana'"):
        pack_plans({"flash_attention": ["True", "banana"]})


def test_ragged_rows_are_refused_naming_the_row():
    with pytest.raises(SpecError, match=r"plans\[1\]\.pp"):
        pack_plans([{"tp": 2, "pp": 2}, {"tp": 4}])


@pytest.mark.parametrize("plans", [None, "llama3-8b", 3.5, [1, 2], object()])
def test_what_is_not_plans_is_refused(plans):
    with pytest.raises(SpecError, match="plans"):
        pack_plans(plans)


@pytest.mark.parametrize("backend", ["reference", "numba", "native"])
def test_a_packed_row_the_kernel_refuses_is_named(backend):
    block = pack_plans({"tp": [1, 2, 4, 8], "global_batch": 64})
    block[2, S.P_DP] = 0.5
    with pytest.raises(SpecError, match=r"plans\[2\]\.dp = 0\.5 is not allowed: an integer"):
        evaluate_batch(MODEL, HW, block, backend=backend)
    block[2, S.P_DP] = 1.0
    block[3, S.P_CAPACITY_FACTOR] = np.nan
    with pytest.raises(SpecError, match=r"plans\[3\]\.capacity_factor = nan"):
        evaluate_batch(MODEL, HW, block, backend=backend)


def test_unknown_column_is_refused_with_the_allowed_ones():
    with pytest.raises(SpecError, match="tensor_parallel.*a plan column: mode"):
        pack_plans({"tensor_parallel": [2]})
