"""Batched policy evaluation against a float64 numpy oracle, on every operator form, both
methods, both Krylov solvers and both working dtypes.

Oracles (independent of the code's own system): discounted ``rho = (1-gamma) (I - gamma
P_pi^T)^{-1} mu`` by ``np.linalg.solve``; average reward: the stationary distribution from the
stacked system ``[P_pi^T - I; 1^T] rho = [0; 1]`` by least squares (not the code's rank-one
fix). ``P_pi`` is built by ``np.einsum`` from the dense ``P``.

Bounds: ``max |rho - rho_ref| <= 1e-6 max |rho_ref|`` (1e-6 relative), and the a-posteriori
bound ``||rho - rho_ref||_1 <= ||E^{-1}||_1 ||r||_1`` with the residual as reported, so that
a residual reported smaller than the true one fails; reported residuals ``<= tol = 1e-6`` and
equal to an independent float64 recomputation ``||b - E rho||_inf / ||b||_inf`` to 1e-12.

Every instance has S = 27 states, A = 4 actions and blocks of B = 4 policies, so that
instances share compilations (one per form, method, dtype and criterion); sparse operators are
padded to one branching and one in-degree for the same reason."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxagg as ja
from jaxagg.envs.attention import factory_transition
from jaxagg.kernels import evaluation, krylov
from jaxagg.kernels import transitions as T
from jaxagg.kernels.precision import precision_scope

S, A, B = 27, 4, 4
TOL = 1e-6
BRANCHING, INDEGREE = 9, 32  # common sparse padding (attention needs 8 and 20)


def padded_sparse(P):
    """``sparse_transitions`` of P with successor lists padded to BRANCHING (probability 0), and
    the transposed lists padded to INDEGREE (weight 0)."""
    successors = np.zeros((S, A, BRANCHING), dtype=np.int64)
    probabilities = np.zeros((S, A, BRANCHING))
    for s in range(S):
        for a in range(A):
            nz = np.flatnonzero(P[s, a])
            successors[s, a, :nz.size] = nz
            successors[s, a, nz.size:] = s  # padding: any index
            probabilities[s, a, :nz.size] = P[s, a, nz]
    op = T.sparse_transitions(successors, probabilities)
    k = op.predecessors.shape[1]
    assert k <= INDEGREE
    return op._replace(predecessors=np.pad(op.predecessors, ((0, 0), (0, INDEGREE - k))),
                       weights=np.pad(op.weights, ((0, 0), (0, INDEGREE - k))))


def attention_factors(m):
    theta = np.array(m.info["theta"])
    F = theta.shape[0]
    return tuple(np.stack([factory_transition(theta[f], monitored=(f == a)) for a in range(F + 1)]) for f in range(F))


def periodic_chain():
    """Period 3: states in three layers (s mod 3), every move goes to the next layer. Action 0 is
    the deterministic cycle s -> s+1 mod 27; actions 1-3 reach 3 random states of the next layer."""
    rng = np.random.default_rng(11)
    P = np.zeros((S, A, S))
    for s in range(S):
        P[s, 0, (s + 1) % S] = 1.0
        layer = np.arange((s + 1) % 3, S, 3)
        for a in range(1, A):
            P[s, a, rng.choice(layer, 3, replace=False)] = rng.dirichlet(np.ones(3))
    return P


def policies(seed, deterministic=None):
    """``[B, S, A]`` Dirichlet policies; policy 0 is ``deterministic`` (an action per state) if given."""
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(A), size=(B, S))
    if deterministic is not None:
        pi[0] = np.eye(A)[deterministic]
    return pi


def build_instances():
    out = {}
    m = ja.envs.attention_allocation(3, 3)
    out["attention-average"] = dict(P=m.P, mu=m.mu, gamma=None, factors=attention_factors(m),
                                    pi=policies(0, deterministic=np.full(S, 3)))  # never monitor: absorbing, transients
    g = ja.envs.garnet(S, A, 3, 2, seed=1)
    out["garnet-average"] = dict(P=g.P, mu=g.mu, gamma=None, pi=policies(1))
    out["periodic-average"] = dict(P=periodic_chain(), mu=np.full(S, 1.0 / S), gamma=None,
                                   pi=policies(2, deterministic=np.zeros(S, int)))  # the deterministic 27-cycle
    for seed, gamma in [(3, 0.99), (4, 0.9)]:
        g = ja.envs.garnet(S, A, 3, 2, seed=seed, criterion="discounted", gamma=gamma)
        mu = np.random.default_rng(seed).dirichlet(np.ones(S))  # a non-uniform start
        out[f"garnet-{gamma}"] = dict(P=g.P, mu=mu, gamma=gamma, pi=policies(seed, deterministic=np.arange(S) % A))
    return out


INSTANCES = build_instances()


def operator(instance, form):
    if form == "dense":
        return T.DenseTransitions(instance["P"])
    if form == "sparse":
        return padded_sparse(instance["P"])
    return T.KroneckerTransitions(instance["factors"])


def system(P, pi, mu, gamma):
    """``E [B, S, S]`` and ``b [S]`` of the documented systems, in numpy float64."""
    P_pi_T = np.einsum("bsa,sat->bts", pi, P)
    if gamma is None:
        return np.eye(S) - P_pi_T + 1.0 / S, np.full(S, 1.0 / S)
    return np.eye(S) - gamma * P_pi_T, (1.0 - gamma) * mu


def oracle(P, pi, mu, gamma):
    P_pi = np.einsum("bsa,sat->bst", pi, P)
    if gamma is not None:
        return np.stack([np.linalg.solve(np.eye(S) - gamma * M.T, (1.0 - gamma) * mu) for M in P_pi])
    out = []
    for M in P_pi:
        stacked = np.vstack([M.T - np.eye(S), np.ones((1, S))])
        rho, _, rank, _ = np.linalg.lstsq(stacked, np.r_[np.zeros(S), 1.0], rcond=None)
        assert rank == S  # unichain: one stationary distribution
        out.append(rho)
    return np.stack(out)


def recomputed_residual(P, pi, mu, gamma, rho):
    E, b = system(P, pi, mu, gamma)
    r = b - np.einsum("bts,bs->bt", E, rho)
    return np.abs(r).max(axis=-1) / np.abs(b).max(), r, E


evaluate = jax.jit(evaluation.evaluate_policies, static_argnames=("gamma", "method", "tol", "solver"))


def run(instance, form, method, precision, pi=None, evaluate=evaluate, solver=None, preconditioner=None):
    op = operator(instance, form)
    pi = instance["pi"] if pi is None else pi
    dtype = jnp.float32 if precision == "float32" else jnp.float64
    options = {"solver": solver} if solver else {}
    if preconditioner is not None:
        options["preconditioner"] = jnp.asarray(preconditioner)
    with precision_scope("float64"):
        out = evaluate(T.astype(op, dtype), T.astype(op, jnp.float64), jnp.asarray(pi), jnp.asarray(instance["mu"]),
                       instance["gamma"], method=method, tol=TOL, **options)
        return np.asarray(out.rho), np.asarray(out.residual)


QUICK = {(None, "dense", "gmres", "float32"), (None, "kronecker", "gmres", "float64"), (None, "dense", "lu", "float64"),
         (0.99, "sparse", "gmres", "float32"), (None, "dense", "bicgstab", "float32"), (0.99, "sparse", "bicgstab", "float32")}
"""Compilations (criterion, form, solver or "lu", dtype) of the quick run; the others (about 8 s
of XLA compilation each on 2 busy cores) are marked slow."""

CASES = []
for _name, _instance in INSTANCES.items():
    for _form in ["dense", "sparse"] + (["kronecker"] if "factors" in _instance else []):
        for _method, _solver in [("krylov", "gmres"), ("krylov", "bicgstab")] + ([("lu", None)] if _form == "dense" else []):
            for _precision in ["float32", "float64"]:
                _quick = (_instance["gamma"], _form, _solver or "lu", _precision) in QUICK
                CASES.append(pytest.param(_name, _form, _method, _solver, _precision,
                                          id=f"{_name}-{_form}-{_solver or _method}-{_precision}",
                                          marks=[] if _quick else [pytest.mark.slow]))


@pytest.mark.parametrize("name, form, method, solver, precision", CASES)
def test_matches_the_numpy_oracle_with_an_honest_residual(name, form, method, solver, precision):
    instance = INSTANCES[name]
    rho, residual = run(instance, form, method, precision, solver=solver)
    check_against_the_oracle(instance, rho, residual)


def check_against_the_oracle(instance, rho, residual):
    """The evaluated ``rho [B, S]`` and reported ``residual [B]`` of ``instance``'s policies
    against :func:`oracle`: the residual is the true one and meets ``TOL``, the error is within
    1e-6 relative and within what the residual allows, and every ``rho`` is a distribution."""
    P, pi, mu, gamma = instance["P"], instance["pi"], instance["mu"], instance["gamma"]
    assert rho.shape == (B, S) and rho.dtype == np.float64
    assert residual.shape == (B,) and residual.dtype == np.float64
    reference = oracle(P, pi, mu, gamma)
    # the residual is recorded, meets the tolerance, and is the true one
    assert (residual <= TOL).all(), residual
    again, r, E = recomputed_residual(P, pi, mu, gamma, rho)
    np.testing.assert_allclose(residual, again, rtol=0, atol=1e-12)
    # accuracy: 1e-6 relative, and within what the reported residual allows
    error = np.abs(rho - reference)
    assert error.max() <= 1e-6 * np.abs(reference).max(), error.max()
    _, b = system(P, pi, mu, gamma)
    inverse_norms = np.array([np.abs(np.linalg.inv(M)).sum(axis=0).max() for M in E])  # ||E^{-1}||_1
    allowed = inverse_norms * S * residual * np.abs(b).max() * (1 + 1e-6) + 1e-13
    assert (error.sum(axis=-1) <= allowed).all(), (error.sum(axis=-1), allowed)
    # distributions: sum to 1 (|1 - 1^T rho| <= S ||r||_inf / ((1-gamma) or 1)), nonnegative up to the error
    np.testing.assert_allclose(rho.sum(axis=-1), 1.0, rtol=0, atol=S * TOL * np.abs(b).max() / ((1 - gamma) if gamma else 1.0))
    assert (rho >= -1e-6 * np.abs(reference).max()).all()


@pytest.mark.parametrize("solver", ["gmres", "bicgstab"])
def test_periodic_deterministic_cycle_is_uniform_and_attention_never_monitoring_is_absorbed(solver):
    # closed forms: the 27-cycle visits every state equally; never monitoring ends in the all-incident state
    # (float32 working precision, refined in float64 to a residual below 1e-7)
    rho, _ = run(INSTANCES["periodic-average"], "dense", "krylov", "float32", solver=solver)
    np.testing.assert_allclose(rho[0], 1.0 / S, rtol=0, atol=1e-8)
    rho, _ = run(INSTANCES["attention-average"], "dense", "krylov", "float32", solver=solver)
    np.testing.assert_allclose(rho[0], np.eye(S)[-1], rtol=0, atol=1e-7)


@pytest.mark.parametrize("form, precision, solver", [pytest.param("dense", "float64", "gmres", marks=pytest.mark.slow),
                                                     ("sparse", "float32", "gmres"), ("sparse", "float32", "bicgstab")])
def test_a_policy_does_not_depend_on_its_block(form, precision, solver):
    instance = INSTANCES["garnet-0.99"]
    rng = np.random.default_rng(7)
    others = rng.dirichlet(np.ones(A), size=(5, S))
    pi = instance["pi"]
    first, res_first = run(instance, form, "krylov", precision, pi=pi, solver=solver)
    # policy 2 of the first block, at positions 0 and 3 among other policies (one of them deterministic)
    block = np.stack([pi[2], others[0], pi[0], others[1]])
    second, res_second = run(instance, form, "krylov", precision, pi=block, solver=solver)
    block = np.stack([others[2], others[3], others[4], pi[2]])
    third, res_third = run(instance, form, "krylov", precision, pi=block, solver=solver)
    np.testing.assert_array_equal(first[2], second[0])
    np.testing.assert_array_equal(first[2], third[3])
    np.testing.assert_array_equal(first[0], second[2])
    np.testing.assert_array_equal(res_first[[2, 2, 0]], [res_second[0], res_third[3], res_second[2]])


def test_argument_errors():
    instance = INSTANCES["garnet-0.9"]
    dense, sparse = T.DenseTransitions(instance["P"]), padded_sparse(instance["P"])
    kron = T.KroneckerTransitions(INSTANCES["attention-average"]["factors"])
    pi, mu = instance["pi"], instance["mu"]
    with precision_scope("float64"):
        pi64, mu64 = jnp.asarray(pi), jnp.asarray(mu)
        for op in (sparse, kron):
            with pytest.raises(ValueError, match="lu"):
                evaluation.evaluate_policies(T.astype(op, jnp.float32), T.astype(op, jnp.float64), pi64, mu64, 0.9, method="lu")
        with pytest.raises(ValueError, match="op64"):
            evaluation.evaluate_policies(T.astype(dense, jnp.float32), T.astype(dense, jnp.float32), pi64, mu64, 0.9)
        with pytest.raises(ValueError, match="method"):
            evaluation.evaluate_policies(T.astype(dense, jnp.float64), T.astype(dense, jnp.float64), pi64, mu64, 0.9, method="cg")
        with pytest.raises(ValueError, match="solver: expected one of"):
            evaluation.evaluate_policies(T.astype(dense, jnp.float64), T.astype(dense, jnp.float64), pi64, mu64, 0.9, solver="cg")
    # outside a float64 context: refused even with a float64 (numpy) operator
    with pytest.raises(ValueError, match="op64"):
        evaluation.evaluate_policies(dense, dense, pi.astype(np.float32), mu.astype(np.float32), 0.9)


@pytest.mark.parametrize("solver", ["gmres", "bicgstab"])
def test_a_residual_above_tolerance_is_reported_not_hidden(monkeypatch, solver):
    # one GMRES(1) cycle or one BiCGSTAB iteration, and no correction, on gamma = 0.999: far from converged
    monkeypatch.setattr(evaluation, "MAX_RESTARTS", 1)
    monkeypatch.setattr(evaluation, "REFINEMENTS", 0)
    monkeypatch.setattr(evaluation, "RESTART", 1)
    monkeypatch.setattr(evaluation, "BICGSTAB_ITERATIONS", 1)
    g = ja.envs.garnet(S, A, 3, 2, seed=5, criterion="discounted", gamma=0.999)
    instance = dict(P=g.P, mu=g.mu, gamma=0.999, pi=policies(5))
    fresh = jax.jit(partial(evaluation.evaluate_policies), static_argnames=("gamma", "method", "tol", "solver"))  # traced with the patches
    rho, residual = run(instance, "dense", "krylov", "float64", evaluate=fresh, solver=solver)
    assert (residual > TOL).all(), residual
    again, _, _ = recomputed_residual(g.P, instance["pi"], g.mu, 0.999, rho)
    np.testing.assert_allclose(residual, again, rtol=1e-9)
    assert np.isfinite(rho).all()


def test_rows_bicgstab_cannot_reduce_go_on_with_gmres(monkeypatch):
    # a BiCGSTAB that makes no progress at all (zero corrections): every row's first round leaves
    # its residual where it was, so every row goes on with GMRES and still meets the oracle
    monkeypatch.setattr(krylov, "bicgstab", lambda matvec, r, **options: jnp.zeros_like(r))
    fresh = jax.jit(partial(evaluation.evaluate_policies), static_argnames=("gamma", "method", "tol", "solver"))  # traced with the patch
    instance = INSTANCES["garnet-average"]
    rho, residual = run(instance, "dense", "krylov", "float64", evaluate=fresh, solver="bicgstab")
    assert (residual <= TOL).all(), residual
    reference = oracle(instance["P"], instance["pi"], instance["mu"], None)
    np.testing.assert_allclose(rho, reference, rtol=0, atol=1e-6 * np.abs(reference).max())


def test_the_default_solver_is_gmres_on_a_cpu_and_bicgstab_on_accelerators_up_to_1024_states():
    limit = evaluation.ACCELERATOR_BICGSTAB_MAX_STATES
    assert [evaluation.default_solver("cpu", S) for S in (27, 243, 5000)] == ["gmres"] * 3
    assert [evaluation.default_solver("gpu", S) for S in (27, limit, limit + 1)] == ["bicgstab", "bicgstab", "gmres"]
    assert evaluation.default_solver("tpu", 243) == "bicgstab"
    # evaluate_policies without a solver is GMRES, bit for bit
    instance = INSTANCES["garnet-0.99"]
    with precision_scope("float64"):
        op = padded_sparse(instance["P"])
        default = evaluate(T.astype(op, jnp.float32), T.astype(op, jnp.float64), jnp.asarray(instance["pi"]),
                           jnp.asarray(instance["mu"]), 0.99, method="krylov", tol=TOL)
    by_gmres, _ = run(instance, "sparse", "krylov", "float32", solver="gmres")
    np.testing.assert_array_equal(np.asarray(default.rho), by_gmres)
    by_bicgstab, _ = run(instance, "sparse", "krylov", "float32", solver="bicgstab")
    assert not np.array_equal(by_gmres, by_bicgstab)  # the solvers round differently: the comparison above can fail


# ------------------------------------------------------------------ the mean-policy preconditioner
def uniform_policy_system(P, gamma):
    """``M [S, S]``: the uniform policy's system matrix in the row convention ``(E y)^T = y^T M``, numpy."""
    P_bar = P.mean(axis=1)
    return np.eye(S) - P_bar + 1.0 / S if gamma is None else np.eye(S) - gamma * P_bar


@pytest.mark.parametrize("name", list(INSTANCES))
def test_the_mean_policy_preconditioner_inverts_the_uniform_policys_system(name):
    instance = INSTANCES[name]
    M = uniform_policy_system(instance["P"], instance["gamma"])
    for form in ["dense", "sparse"] + (["kronecker"] if "factors" in instance else []):
        # 10 unit vectors per call: three calls, the last one padded
        Q = evaluation.mean_policy_preconditioner(operator(instance, form), instance["gamma"], rows_per_call=10)
        assert Q.shape == (S, S) and Q.dtype == np.float64
        np.testing.assert_allclose(Q @ M, np.eye(S), rtol=0, atol=1e-10)


def test_a_singular_uniform_policy_system_gives_the_identity_and_too_many_states_are_refused():
    # every state absorbing: the uniform policy is multichain, its average-reward system singular
    stay = np.broadcast_to(np.eye(S)[:, None, :], (S, A, S)).copy()
    np.testing.assert_array_equal(evaluation.mean_policy_preconditioner(T.DenseTransitions(stay), None), np.eye(S))
    # under discounting the same chain's system is (1 - gamma) I: well conditioned, inverted
    np.testing.assert_allclose(evaluation.mean_policy_preconditioner(T.DenseTransitions(stay), 0.5), 2.0 * np.eye(S))
    big = evaluation.PRECONDITIONER_MAX_STATES + 1
    successors = np.broadcast_to(np.arange(big)[:, None, None], (big, 1, 1))
    with pytest.raises(ValueError, match="at most 4096 states"):
        evaluation.mean_policy_preconditioner(T.sparse_transitions(successors, np.ones((big, 1, 1))), 0.9)


def count_working_products(monkeypatch):
    """Patch :func:`evaluation.system_matvec` so that every working-precision (float32) operator
    product run inside a compiled function adds 1 to the returned counter (``[0]``)."""
    count = [0]
    plain = evaluation.system_matvec

    def counting(op, pi, gamma):
        matvec = plain(op, pi, gamma)
        if T.dtype_of(op) != jnp.float32:
            return matvec

        def counted(x):
            jax.debug.callback(lambda: count.__setitem__(0, count[0] + 1))
            return matvec(x)

        return counted

    monkeypatch.setattr(evaluation, "system_matvec", counting)
    return count


@pytest.mark.parametrize("name, form, solver", [("attention-average", "kronecker", "bicgstab"),
                                                ("garnet-0.99", "sparse", "gmres"),
                                                pytest.param("garnet-average", "dense", "bicgstab", marks=pytest.mark.slow),
                                                pytest.param("periodic-average", "dense", "gmres", marks=pytest.mark.slow)])
def test_preconditioned_solves_meet_the_oracle(monkeypatch, name, form, solver):
    """With the instances' hard policies too (deterministic ones, far from the uniform policy the
    preconditioner inverts, where it may cost iterations); and for Dirichlet policies, which
    scatter around the uniform one (what the ``policy`` measure samples), in fewer products."""
    instance = INSTANCES[name]
    count = count_working_products(monkeypatch)
    fresh = jax.jit(partial(evaluation.evaluate_policies), static_argnames=("gamma", "method", "tol", "solver"))  # traced with the patch
    Q = evaluation.mean_policy_preconditioner(operator(instance, form), instance["gamma"])
    plain, _ = run(instance, form, "krylov", "float32", evaluate=fresh, solver=solver)
    rho, residual = run(instance, form, "krylov", "float32", evaluate=fresh, solver=solver, preconditioner=Q)
    check_against_the_oracle(instance, rho, residual)
    assert not np.array_equal(rho, plain)  # another iteration: the checks above are of new numbers
    # the identity as a preconditioner changes nothing, bit for bit (y @ I is exact)
    same, _ = run(instance, form, "krylov", "float32", evaluate=fresh, solver=solver, preconditioner=np.eye(S))
    np.testing.assert_array_equal(same, plain)
    dirichlet = np.random.default_rng(8).dirichlet(np.ones(A), size=(B, S))
    count[0] = 0
    run(instance, form, "krylov", "float32", pi=dirichlet, evaluate=fresh, solver=solver)
    products = count[0]
    count[0] = 0
    rho, residual = run(instance, form, "krylov", "float32", pi=dirichlet, evaluate=fresh, solver=solver, preconditioner=Q)
    check_against_the_oracle({**instance, "pi": dirichlet}, rho, residual)
    assert 0 < count[0] < products, (count[0], products)


def test_the_default_preconditioner_is_none_on_a_cpu_and_the_mean_policy_on_accelerators_up_to_1024_states():
    limit = evaluation.ACCELERATOR_PRECONDITIONER_MAX_STATES
    assert [evaluation.default_preconditioner("cpu", S) for S in (27, 243, 5000)] == ["none"] * 3
    assert [evaluation.default_preconditioner("gpu", S) for S in (27, limit, limit + 1)] == ["mean-policy", "mean-policy", "none"]
    with precision_scope("float64"):
        op = T.DenseTransitions(INSTANCES["garnet-0.9"]["P"])
        with pytest.raises(ValueError, match=r"preconditioner: expected an \[27, 27\] matrix"):
            evaluation.evaluate_policies(T.astype(op, jnp.float32), T.astype(op, jnp.float64), jnp.asarray(INSTANCES["garnet-0.9"]["pi"]),
                                         jnp.asarray(INSTANCES["garnet-0.9"]["mu"]), 0.9, preconditioner=jnp.eye(5))
        with pytest.raises(ValueError, match="for the 'krylov' method"):
            evaluation.evaluate_policies(op, T.astype(op, jnp.float64), jnp.asarray(INSTANCES["garnet-0.9"]["pi"]),
                                         jnp.asarray(INSTANCES["garnet-0.9"]["mu"]), 0.9, method="lu", preconditioner=jnp.eye(S))


# ------------------------------------------------------------------ product precision
def dot_precisions(jaxpr) -> list:
    """The ``precision`` of every ``dot_general`` in a closed jaxpr, sub-jaxprs (loops, conds) included."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(eqn.params["precision"])
        for value in eqn.params.values():
            for sub in value if isinstance(value, tuple | list) else (value,):
                inner = getattr(sub, "jaxpr", None)
                if inner is not None:
                    found += dot_precisions(inner if hasattr(inner, "eqns") else inner.jaxpr)
    return found


@pytest.mark.parametrize("method", ["krylov", "lu", "preconditioned"])
def test_products_are_traced_in_full_precision_whatever_the_callers_default(method):
    """A GPU rounds float32 product operands to TensorFloat-32 (or bfloat16) under JAX's default
    precision, which costs GMRES its orthogonality: the kernel sets its own, at trace time."""
    m = ja.envs.attention_allocation(2, 3)
    highest = jax.lax.Precision.HIGHEST
    with precision_scope("float64"), jax.default_matmul_precision("bfloat16"):
        dense = T.DenseTransitions(m.P)
        op32, op64 = T.astype(dense, jnp.float32), T.astype(dense, jnp.float64)
        pi = jnp.full((2, m.num_states, m.num_actions), 1.0 / m.num_actions)
        options = {"preconditioner": jnp.eye(m.num_states)} if method == "preconditioned" else {"method": method}
        jaxpr = jax.make_jaxpr(lambda pi: evaluation.evaluate_policies(op32, op64, pi, jnp.asarray(m.mu), m.gamma,
                                                                        **options))(pi)
        outside = jax.make_jaxpr(lambda x: x @ x)(jnp.ones((3, 3), jnp.float32))
    precisions = dot_precisions(jaxpr.jaxpr)
    assert precisions and all(p == (highest, highest) for p in precisions), precisions
    assert dot_precisions(outside.jaxpr) == [(jax.lax.Precision.DEFAULT, jax.lax.Precision.DEFAULT)]  # the caller's own
