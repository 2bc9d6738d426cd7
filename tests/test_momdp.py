"""MOMDP validation, save/load and the pymdptoolbox converter."""

import json

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.errors import DegenerateAgentError, ShapeError, ValidationError


def small_arrays():
    P = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.0, 1.0]]])  # [S=2, A=2, S=2]
    R = np.array([[[1.0, 0.0], [0.0, 0.5]], [[0.0, 1.0], [0.3, 0.0]]])  # [n=2, S, A]
    return P, R


def test_valid_instance_is_read_only_float64():
    P, R = small_arrays()
    m = ja.MOMDP(P, R)
    assert (m.num_states, m.num_actions, m.num_agents, m.dim) == (2, 2, 2, 4)
    np.testing.assert_allclose(m.mu, [0.5, 0.5])
    assert m.P.dtype == np.float64 and not m.P.flags.writeable
    with pytest.raises(ValueError):
        m.R[0, 0, 0] = 5.0
    P[0, 0, 0] = 0.0  # the instance holds a copy
    assert m.P[0, 0, 0] == 0.9


def test_single_agent_reward_gets_agent_axis():
    P, R = small_arrays()
    single = ja.MOMDP(P, R[0])
    assert single.R.shape == (1, 2, 2) and single.num_agents == 1
    np.testing.assert_array_equal(single.R[0], R[0])
    np.testing.assert_array_equal(single.reward_matrix, [[1.0, 0.0, 0.0, 0.5]])
    assert single.fingerprint == ja.MOMDP(P, R[:1]).fingerprint  # the same instance as the 3-d form
    # it is agent 0 of the two-agent instance: the same returns and return range
    d = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(single.returns(d), [0.1 + 0.2])
    both = ja.MOMDP(P, R)
    np.testing.assert_array_equal(single.returns(d), both.returns(d)[:1])
    np.testing.assert_allclose(ja.return_bounds(single).upper, ja.return_bounds(both).upper[:1], rtol=1e-12)
    np.testing.assert_allclose(ja.return_bounds(single).lower, ja.return_bounds(both).lower[:1], rtol=1e-12)


def test_returns_are_linear_in_the_occupancy():
    P, R = small_arrays()
    m = ja.MOMDP(P, R)
    d = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(m.returns(d), [0.1 + 0.2, 0.2 + 0.3 * 0.3])
    np.testing.assert_allclose(m.returns(np.stack([d, d])), np.stack([m.returns(d)] * 2))
    with pytest.raises(ShapeError, match="occupancy"):
        m.returns(np.ones(5))


@pytest.mark.parametrize(
    "change, error, pattern",
    [
        (lambda P, R: (P[0], R), ShapeError, r"P: expected a 3-d array, got shape \(2, 2\)"),
        (lambda P, R: (P[:, :, :1], R), ShapeError, "P: expected shape"),
        (lambda P, R: (P, R[:, :, :1]), ShapeError, "R: expected shape"),
        (lambda P, R: (P, R[:0]), ValidationError, "R: expected at least one agent"),
        (lambda P, R: (P, np.ones((2,) * 4)), ShapeError, "R: expected a 2-d or 3-d array"),
        (lambda P, R: (np.where(P == 0.9, np.nan, P), R), ValidationError, r"P: expected finite numbers, found nan at index \(0, 0, 0\)"),
        (lambda P, R: (P, np.where(R == 0.5, np.inf, R)), ValidationError, "R: expected finite numbers, found inf"),
        (lambda P, R: (np.where(P == 0.9, 1.1, np.where(P == 0.1, -0.1, P)), R), ValidationError, "P: probabilities must be >= 0"),
        (lambda P, R: (np.where(P == 0.9, 0.8, P), R), ValidationError, r"P: row \(0, 0\) sums to 0.9, expected 1 \(tolerance 1e-06\)"),
        (lambda P, R: (P, np.zeros_like(R) + 3.0), DegenerateAgentError, r"R: agent\(s\) \[0, 1\] have the same reward"),
        (lambda P, R: ("not an array", R), ValidationError, "P: expected a numeric array"),
    ],
)
def test_invalid_arrays_raise_one_clear_error(change, error, pattern):
    P, R = change(*small_arrays())
    with pytest.raises(error, match=pattern) as info:
        ja.MOMDP(P, R)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"mu": [0.7, 0.2]}, r"mu: the vector sums to 0.9, expected 1"),
        ({"mu": [1.0]}, r"mu: expected shape \[2\]"),
        ({"mu": [1.5, -0.5]}, "mu: probabilities must be >= 0"),
        ({"criterion": "total"}, "criterion: expected one of"),
        ({"criterion": "discounted"}, "gamma: the discounted criterion needs a discount factor"),
        ({"criterion": "discounted", "gamma": 1.0}, r"gamma: expected a number in \(0, 1\)"),
        ({"criterion": "discounted", "gamma": 0.0}, r"gamma: expected a number in \(0, 1\)"),
        ({"criterion": "discounted", "gamma": "high"}, "gamma: expected a number"),
        ({"criterion": "average", "gamma": 0.9}, "gamma: must be None for the average-reward criterion"),
        ({"agent_names": ("a",)}, "agent_names: expected 2 labels, got 1"),
        ({"action_names": "ab"}, "action_names: expected a sequence of 2 strings"),
        ({"info": {"x": object()}}, "info: expected JSON-serialisable metadata"),
    ],
)
def test_invalid_options_raise_one_clear_error(kwargs, pattern):
    P, R = small_arrays()
    with pytest.raises(ValidationError, match=pattern) as info:
        ja.MOMDP(P, R, **kwargs)
    assert "\n" not in str(info.value)


def test_rows_within_tolerance_are_renormalised_exactly():
    P, R = small_arrays()
    P = P.copy()
    P[0, 0] = [0.9 + 4e-7, 0.1]
    m = ja.MOMDP(P, R)
    np.testing.assert_allclose(m.P.sum(axis=-1), np.ones((2, 2)), rtol=0, atol=1e-15)


def test_return_constant_over_polytope_warns_and_normalises_to_one():
    # Agent 1's reward differs only in a state that no policy can ever reach under the average
    # criterion (state 1 is transient and can't be re-entered): its return is constant over O.
    P = np.zeros((2, 2, 2))
    P[:, :, 0] = 1.0
    R = np.zeros((2, 2, 2))
    R[0, 0] = [1.0, 0.0]
    R[1, 1] = [1.0, 0.0]
    m = ja.MOMDP(P, R)
    with pytest.warns(ja.errors.DegenerateAgentWarning, match=r"agent\(s\) \[1\]"):
        bounds = ja.return_bounds(m)
    assert bounds.degenerate.tolist() == [False, True]
    np.testing.assert_allclose(bounds.normalize([0.5, 0.0]), [0.5, 1.0])


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_save_load_round_trip(tmp_path, suffix):
    m = ja.envs.attention_allocation(3, 3, seed=4, criterion="discounted", gamma=0.9)
    path = m.save(tmp_path / f"instance{suffix}")
    back = ja.load(path)
    for name in ("P", "R", "mu"):
        np.testing.assert_array_equal(getattr(back, name), getattr(m, name))
    assert (back.criterion, back.gamma, back.agent_names, back.state_names, back.action_names) == (
        m.criterion, m.gamma, m.agent_names, m.state_names, m.action_names)
    assert back.info == m.info


def test_npz_is_read_without_pickle(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, P=np.array([object()], dtype=object), metadata=np.array("{}"))
    with pytest.raises(ValidationError, match=r"holds an object \(pickled\) array; refusing to unpickle"):
        ja.load(path)


@pytest.mark.parametrize(
    "content, pattern",
    [("{not json", "is not valid JSON"), (json.dumps({"P": [[[1.0]]]}), r"missing required key\(s\) \['R'\]"),
     (json.dumps({"format": "other/9", "P": 1, "R": 1}), "expected format")],
)
def test_bad_files_raise_clear_errors(tmp_path, content, pattern):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValidationError, match=pattern):
        ja.load(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    m = ja.envs.bandit(np.eye(2))
    with pytest.raises(ValidationError, match="ending in .npz or .json"):
        m.save(tmp_path / "x.pkl")
    with pytest.raises(ValidationError, match="no such file"):
        ja.load(tmp_path / "missing.npz")


def test_mdptoolbox_round_trip_and_reward_layouts():
    P, R = small_arrays()
    P_ass = np.transpose(P, (1, 0, 2))
    state_reward = np.array([1.0, 2.0])
    transition_reward = np.zeros((2, 2, 2))
    transition_reward[:, :, 1] = 1.0  # reward 1 for landing in state 1
    m = ja.from_mdptoolbox(P_ass, [R[0], state_reward, transition_reward], gamma=0.9)
    np.testing.assert_array_equal(m.P, P)
    np.testing.assert_array_equal(m.R[0], R[0])
    np.testing.assert_array_equal(m.R[1], [[1.0, 1.0], [2.0, 2.0]])
    np.testing.assert_allclose(m.R[2], P[:, :, 1])  # expected reward = P(s, a, 1)
    back_P, back_R = ja.to_mdptoolbox(m)
    np.testing.assert_array_equal(back_P, P_ass)
    np.testing.assert_array_equal(back_R[0], R[0])
    with pytest.raises(ShapeError, match=r"rewards\[0\]: expected shape \[2\], \[2, 2\] or \[2, 2, 2\]"):
        ja.from_mdptoolbox(P_ass, [np.ones(3)])
    with pytest.raises(ValidationError, match="rewards: expected a non-empty list"):
        ja.from_mdptoolbox(P_ass, [])
