"""The llp method's exact VP transport solver against a generic LP solver (scipy's HiGHS): same optimal value
and a feasible plan, on bags with fractional N * Y (real-valued masses), through the library's evaluate
request (kind "solve")."""
import numpy as np
import pytest

import cellcount
from cellcount import api

linprog = pytest.importorskip("scipy.optimize").linprog


def _methods():
    return {m["id"] for m in cellcount.library_info()["methods"]}


def _lp_optimum(c: np.ndarray, y: np.ndarray) -> float:
    n, k = c.shape
    a_eq = np.zeros((n + k, n * k))
    for i in range(n):
        a_eq[i, i * k:(i + 1) * k] = 1.0                 # each detection carries 1/N
    for j in range(k):
        a_eq[n + j, j::k] = 1.0                          # class j receives Y_j
    b_eq = np.concatenate([np.full(n, 1.0 / n), y])
    res = linprog(c.ravel(), A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    assert res.status == 0, res.message
    return float(res.fun)


@pytest.mark.parametrize("n,k,seed", [(1, 3, 0), (7, 2, 1), (40, 3, 2), (300, 5, 3), (120, 8, 4)])
def test_vp_solver_matches_scipy_linprog(n, k, seed):
    if "llp" not in _methods():
        pytest.skip("this build has no llp method")
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, k))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    c = -logp                                            # VP-CE costs
    y = rng.dirichlet(np.ones(k))
    r = api._request("cellcount_evaluate", {"method": "llp", "kind": "solve", "costs": c.tolist(),
                                            "proportions": y.tolist()}, None)
    plan = np.asarray(r["plan"]).reshape(n, k)
    assert np.all(plan >= 0)
    np.testing.assert_allclose(plan.sum(1), 1.0 / n, atol=1e-12)
    np.testing.assert_allclose(plan.sum(0), y, atol=1e-12)
    assert r["cost"] == pytest.approx(float((plan * c).sum()), abs=1e-12)
    assert r["cost"] == pytest.approx(_lp_optimum(c, y), abs=1e-7)
