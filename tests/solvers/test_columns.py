"""Column generation with MDP pricing (jaxagg.solvers.columns) against HiGHS on the full LP: the
same optima, duals and verdicts, on Garnets and attention, both criteria; the rules through it;
the certificate; the fallback to the full LP."""

from __future__ import annotations

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import InfeasibleError, SolverTimeoutError, UnboundedError
from jaxagg.rules import registry
from jaxagg.solvers import columns, mdp
from jaxagg.solvers.highs import INF, HighsModel
from jaxagg.solvers.program import OccupancyProgram

INSTANCES = ["garnet_average", "garnet_discounted", "attention_3_3"]


def level_program(m):
    """max t s.t. R_i d - t >= 0 for every agent (the egalitarian LP on raw returns)."""
    program = OccupancyProgram(ja.occupancy_polytope(m))
    (t,) = program.add_variables(1)
    rows = program.add_rows(program.rows_in(m.reward_matrix, [t], -np.ones((m.num_agents, 1))), lower=0.0, upper=INF)
    cost = np.zeros(program.num_cols)
    cost[t] = 1.0
    return program, cost, rows


def both(program, cost, sense="max"):
    """The same program as a ColumnModel and as the full HighsModel."""
    return program.build(cost, sense, solver="columns"), program.build(cost, sense, solver="simplex")


@pytest.mark.parametrize("fixture", INSTANCES)
@pytest.mark.parametrize("sense", ["max", "min"])
def test_linear_objectives_match_the_full_lp(fixture, sense, request):
    m = request.getfixturevalue(fixture)
    program = OccupancyProgram(ja.occupancy_polytope(m))
    rng = np.random.default_rng(1)
    for cost in [m.reward_matrix.sum(axis=0), rng.normal(size=m.dim)]:
        model, full = both(program, cost, sense)
        assert isinstance(model, columns.ColumnModel) and isinstance(full, HighsModel)
        ours, reference = model.solve(), full.solve()
        assert ours.objective == pytest.approx(reference.objective, rel=1e-8, abs=1e-8)
        assert ours.highs_status == "column-generation"
        d = program.occupancy(ours)
        assert ja.occupancy_polytope(m).residual(d) <= 1e-10
        assert cost @ d == pytest.approx(ours.objective, rel=1e-12, abs=1e-12)
        # the certified bound brackets the optimum on the right side
        if sense == "max":
            assert ours.objective <= reference.objective + 1e-9 <= ours.dual_bound + 2e-9
        else:
            assert ours.objective >= reference.objective - 1e-9 >= ours.dual_bound - 2e-9


@pytest.mark.parametrize("fixture", INSTANCES)
def test_a_level_program_matches_the_full_lp_with_its_duals(fixture, request):
    m = request.getfixturevalue(fixture)
    program, cost, rows = level_program(m)
    model, full = both(program, cost)
    ours, reference = model.solve(), full.solve()
    assert ours.objective == pytest.approx(reference.objective, rel=1e-8, abs=1e-8)
    # the rule rows' duals (what leximin reads) agree; O's rows are not reported
    np.testing.assert_allclose(ours.row_duals[rows], reference.row_duals[rows], atol=1e-7)
    assert np.isnan(ours.row_duals[: ja.occupancy_polytope(m).E.shape[0]]).all()
    assert len(ours.row_duals) == model.num_rows == full.num_rows


@pytest.mark.parametrize("fixture", INSTANCES)
def test_a_sequence_of_bounds_costs_and_cuts_matches_the_full_lp(fixture, request):
    m = request.getfixturevalue(fixture)
    program, cost, rows = level_program(m)
    model, full = both(program, cost)
    bounds = ja.return_bounds(m)
    rng = np.random.default_rng(2)
    for _ in range(3):  # floors anywhere in the return ranges, feasible or not: the level absorbs them
        floors = bounds.lower + rng.uniform(0, 0.8, m.num_agents) * (bounds.upper - bounds.lower)
        for target in (model, full):
            target.set_row_bounds(rows, -floors, INF)
        assert model.solve().objective == pytest.approx(full.solve().objective, rel=1e-8, abs=1e-8)
    # a cut on the level and a new objective (the level plus a little utilitarian welfare)
    cut = np.zeros((1, program.num_cols))
    cut[0, : m.dim] = m.reward_matrix[0]
    cut[0, -1] = -1.0
    new_cost = cost.copy()
    new_cost[: m.dim] = 1e-3 * m.reward_matrix.sum(axis=0)
    for target in (model, full):
        target.add_rows(cut, 1.0, INF)
        target.set_cost(new_cost)
    assert model.solve().objective == pytest.approx(full.solve().objective, rel=1e-8, abs=1e-8)


def test_infeasible_rows_are_certified_infeasible(attention_3_3):
    m = attention_3_3
    bounds = ja.return_bounds(m)
    program = OccupancyProgram(ja.occupancy_polytope(m))
    program.add_rows(m.reward_matrix, lower=bounds.upper - 1e-3 * (bounds.upper - bounds.lower), upper=INF)  # every maximum at once
    model = program.build(np.zeros(m.dim), "max", solver="columns")
    with pytest.raises(InfeasibleError) as caught:
        model.solve()
    assert "certified by column generation" in caught.value.result.message
    with pytest.raises(InfeasibleError):
        program.build(np.zeros(m.dim), "max", solver="simplex").solve()


def test_an_unbounded_program_is_reported_unbounded(garnet_discounted):
    m = garnet_discounted
    program = OccupancyProgram(ja.occupancy_polytope(m))
    (z,) = program.add_variables(1)
    program.add_rows(program.rows_in(m.reward_matrix[:1], [z], -np.ones((1, 1))), lower=-INF, upper=0.0)  # z >= R_0 d
    cost = np.zeros(program.num_cols)
    cost[z] = -1.0
    bounded = program.build(cost, "max", solver="columns").solve()  # max -z = -min_O R_0 d
    assert bounded.objective == pytest.approx(-ja.return_bounds(m).lower[0], rel=1e-8)
    cost[z] = 1.0
    with pytest.raises(UnboundedError):
        program.build(cost, "max", solver="columns").solve()


def test_the_full_lp_takes_over_when_pricing_cannot_be_certified(garnet_average, monkeypatch):
    program, cost, _ = level_program(garnet_average)
    reference = program.build(cost, "max", solver="simplex").solve()
    real = mdp.solve_mdps
    calls = []

    def uncertified(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            return out  # the first column
        # no bound (a value vector that failed) and no column in O
        return out._replace(upper=np.full_like(out.upper, np.inf), residual=np.full_like(out.residual, 1.0))

    monkeypatch.setattr(mdp, "solve_mdps", uncertified)
    model = program.build(cost, "max", solver="columns")
    result = model.solve()
    assert "full LP" in result.message and "could not certify" in result.message
    assert result.objective == pytest.approx(reference.objective, rel=1e-9)
    assert model.solve().objective == pytest.approx(reference.objective, rel=1e-9)  # stays on the full LP


def test_a_time_limit_returns_the_feasible_master_point(attention_3_3, monkeypatch):
    monkeypatch.setattr(columns.time, "perf_counter", iter(np.arange(0.0, 1e6, 10.0)).__next__)
    program, cost, _ = level_program(attention_3_3)
    model = program.build(cost, "max", solver="columns", time_limit=1.0)
    with pytest.raises(SolverTimeoutError) as caught:
        model.solve()
    result = caught.value.result
    assert result.x is not None and ja.occupancy_polytope(attention_3_3).residual(program.occupancy(result)) <= 1e-10


def test_build_chooses_column_generation_for_large_lps_only(garnet_average, garnet_multichain, monkeypatch):
    monkeypatch.setattr(columns, "MIN_DIM", 1)
    program = OccupancyProgram(ja.occupancy_polytope(garnet_average))
    assert isinstance(program.build(np.zeros(program.num_cols)), columns.ColumnModel)
    assert isinstance(program.build(np.zeros(program.num_cols), solver="simplex"), HighsModel)
    program.add_variables(1, 0.0, 1.0, integer=True)
    assert isinstance(program.build(np.zeros(program.num_cols)), HighsModel)  # a MILP
    multichain = OccupancyProgram(ja.occupancy_polytope(garnet_multichain))  # auxiliary columns: no MDP pricing
    assert not columns.applies(multichain.polytope)
    assert isinstance(multichain.build(np.zeros(multichain.num_cols)), HighsModel)
    monkeypatch.setattr(columns, "MIN_DIM", 10**9)
    assert isinstance(OccupancyProgram(ja.occupancy_polytope(garnet_average)).build(np.zeros(garnet_average.dim)), HighsModel)


RULES = ["utilitarian-normalized", "egalitarian-normalized", "leximin", "leximin-normalized", "nash", "max-quantile",
         "approval", "borda", "veto"]


@pytest.mark.parametrize("fixture", ["attention_3_3", "garnet_discounted"])
def test_the_rules_through_column_generation_agree_with_the_full_lps(fixture, request, monkeypatch):
    m = request.getfixturevalue(fixture)
    sample = ja.sample(m, 2000, seed=0)
    span = ja.return_bounds(m).span
    monkeypatch.setattr(columns, "MIN_DIM", 10**9)
    reference = {name: registry.get(name)(m, sample) if registry.get(name).needs_sample else registry.get(name)(m)
                 for name in RULES}
    monkeypatch.setattr(columns, "MIN_DIM", 1)
    for name in RULES:
        rule = registry.get(name)
        outcome = rule(m, sample) if rule.needs_sample else rule(m)
        assert any(s.highs_status == "column-generation" for s in outcome.solves), name
        np.testing.assert_allclose(outcome.returns / span, reference[name].returns / span, atol=1e-6, err_msg=name)


def test_a_column_generation_point_carries_the_policy_mixture_that_reaches_it(garnet_average):
    from jaxagg.rules.outcome import POLICY_RTOL, _column_mixture

    m = garnet_average
    program, cost, _ = level_program(m)
    result = program.build(cost, "max", solver="columns").solve()
    weights, policies = result.mixture
    assert weights.sum() == pytest.approx(1.0) and (weights > 0).all()
    # the point is exactly the weighted occupancies of those policies
    exact = np.stack([ja.occupancy_of_policy(m, pi) for pi in policies])
    np.testing.assert_allclose(weights @ exact, program.occupancy(result), atol=1e-10)
    returns = m.returns(program.occupancy(result))
    hinted = _column_mixture(m, result.mixture, returns)
    assert hinted is not None
    span = ja.return_bounds(m).span
    assert np.abs(hinted[3] - returns).max() <= POLICY_RTOL * span.max()
    # a mixture of stochastic policies is not an Outcome mixture: refused
    assert _column_mixture(m, (weights, np.full_like(policies, 1.0 / m.num_actions)), returns) is None
    # more than n + 1 components are cut to at most n + 1 with the same returns
    extra = np.stack([np.eye(m.num_actions)[np.random.default_rng(k).integers(m.num_actions, size=m.num_states)]
                      for k in range(m.num_agents + 2)])
    extra_returns = np.stack([m.returns(ja.occupancy_of_policy(m, pi)) for pi in extra])
    many = (np.full(len(extra), 1.0 / len(extra)), extra)
    cut = _column_mixture(m, many, many[0] @ extra_returns)
    assert cut is not None and cut[1] is not None and len(cut[1]) <= m.num_agents + 1
    assert np.abs(cut[3] - many[0] @ extra_returns).max() <= POLICY_RTOL * span.max()
