"""Issue 11, "no lost samples, no silent wrong answers": each numbered case of the issue is a test
here (or, where noted, next to the code it concerns)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jaxagg as ja
from jaxagg.cli import main
from jaxagg.errors import ValidationError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def garnet():
    return ja.envs.garnet(8, 3, 2, 3, seed=0)


# ---------------------------------------------------------------- 1. atomic files
KILL_DURING_SAVE = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    import jaxagg as ja
    from jaxagg import files

    path, what = sys.argv[1], sys.argv[2]
    def write_half_then_die(handle, **arrays):
        handle.write(b"PK\\x03\\x04" + b"half a zip file")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    files.np.savez_compressed = write_half_then_die
    m = ja.envs.garnet(5, 2, 2, 2, seed=1)
    if what == "sample":
        ja.sample(m, 64, seed=3).save(path)
    else:
        m.save(path)
""")


@pytest.mark.parametrize("what", ["sample", "momdp"])
def test_a_process_killed_while_saving_leaves_the_old_file_intact(tmp_path, what):
    path = tmp_path / "kept.npz"
    m = ja.envs.garnet(5, 2, 2, 2, seed=1)
    old = ja.sample(m, 32, seed=3) if what == "sample" else m
    old.save(path)
    before = path.read_bytes()
    run = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, str(path), what], cwd=ROOT, capture_output=True)
    assert run.returncode == -9, run.stderr.decode()[-2000:]  # killed inside the writer
    assert path.read_bytes() == before
    if what == "sample":
        np.testing.assert_array_equal(ja.load_sample(path).returns, old.returns)
    else:
        np.testing.assert_array_equal(ja.load(path).P, m.P)


def test_a_failed_write_removes_its_temporary_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    from jaxagg import files

    path = tmp_path / "s.npz"
    m = ja.envs.garnet(5, 2, 2, 2, seed=1)
    ja.sample(m, 32).save(path)
    before = path.read_bytes()

    def failing(handle, **arrays):
        handle.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.np, "savez_compressed", failing)
    with pytest.raises(OSError, match="No space left"):
        ja.sample(m, 64).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]


def test_uppercase_suffix_is_not_doubled(tmp_path):
    m = ja.envs.garnet(5, 2, 2, 2, seed=1)
    assert m.save(tmp_path / "X.NPZ").name == "X.NPZ"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.NPZ"]
    assert ja.load(tmp_path / "X.NPZ").fingerprint == m.fingerprint


def test_output_paths_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    import jaxagg.cli as cli

    def no_work(*args, **kwargs):
        raise AssertionError("sampling started before the output path was checked")

    monkeypatch.setattr(cli, "sample_measure", no_work)
    cases = [
        (["sample", "--out", str(tmp_path / "s.txt")], "--out: expected a file name ending in .npz"),
        (["sample", "--out", str(tmp_path / "folder.npz")], "is a folder, expected a file name"),
        (["run", "--env", "garnet", "--json", str(tmp_path / "r.txt")], "--json: expected a file name ending in .json"),
        (["run", "--env", "garnet", "--figure", str(tmp_path / "f.txt")], "--figure: expected a file name ending in .png"),
        (["env", "--out", str(tmp_path / "i.csv")], "--out: expected a file name ending in .npz or .json"),
    ]
    (tmp_path / "folder.npz").mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases.append((["sample", "--out", str(blocker / "s.npz")], "is a file, so"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv


def test_sample_refuses_to_overwrite_without_force(tmp_path, capsys):
    out = tmp_path / "s.npz"
    base = ["sample", "--env", "garnet", "--states", "5", "--num-samples", "40", "--out", str(out), "--quiet"]
    assert main(base) == 0
    first = ja.load_sample(out)
    assert main(base) == 2
    assert "exists; pass --resume to continue it or --force to overwrite it" in capsys.readouterr().err
    np.testing.assert_array_equal(ja.load_sample(out).returns, first.returns)
    assert main([*base, "--force", "--sample-seed", "4"]) == 0
    assert ja.load_sample(out).seed == 4


# ---------------------------------------------------------------- 5. samples of another instance
def test_every_rule_and_extend_refuse_a_sample_of_another_instance(garnet):
    other = ja.sample(ja.envs.garnet(8, 3, 2, 3, seed=5), 300)
    for name in ja.rules.names(needs_sample=True):
        with pytest.raises(ValidationError, match="was drawn for a different instance"):
            ja.rules.get(name)(garnet, other)
    with pytest.raises(ValidationError, match="was drawn for a different instance"):
        ja.tune(garnet, other)
    with pytest.raises(ValidationError, match="was drawn for a different instance"):
        ja.extend(garnet, other, 10)
    with pytest.raises(ValidationError, match="was drawn for a different instance"):
        ja.compare(garnet, ["utilitarian", "max-quantile"], other)


def test_deleting_the_bounds_from_a_file_does_not_bypass_the_check(tmp_path, garnet):
    other = ja.sample(ja.envs.garnet(8, 3, 2, 3, seed=5), 300)
    path = tmp_path / "o.npz"
    other.save(path)
    with np.load(path) as archive:
        metadata = str(archive["metadata"])
        returns = archive["returns"]
    np.savez(path, metadata=np.array(metadata), returns=returns)
    stripped = ja.load_sample(path)
    assert stripped.max_returns is None
    with pytest.raises(ValidationError, match="was drawn for a different instance"):
        ja.rules.get("max-quantile")(garnet, stripped)


def test_old_files_without_a_fingerprint_get_a_clear_message_and_can_be_bound(tmp_path, garnet):
    sample = ja.sample(garnet, 200)
    old = ja.ReturnSample(sample.returns, "policy", seed=0, max_returns=sample.max_returns, min_returns=sample.min_returns)
    with pytest.raises(ValidationError, match=r"carries no instance fingerprint .* sample.bind\(momdp, ja.return_bounds\(momdp\)\)"):
        ja.rules.get("max-quantile")(garnet, old)
    bound = old.bind(garnet, ja.return_bounds(garnet))
    assert ja.rules.get("max-quantile")(garnet, bound).info["q_star"] == ja.rules.get("max-quantile")(garnet, sample).info["q_star"]
    with pytest.raises(ValidationError, match="it was drawn for another instance"):
        old.bind(ja.envs.garnet(8, 3, 2, 3, seed=5), ja.return_bounds(ja.envs.garnet(8, 3, 2, 3, seed=5)))


# ---------------------------------------------------------------- 8. resume and extend
def test_a_sample_extended_by_itself_is_refused(garnet):
    s = ja.sample(garnet, 100, seed=2)
    with pytest.raises(ValidationError, match="already has; a sample extended by itself would count them twice"):
        s.extend(s)
    with pytest.raises(ValidationError, match="already has"):
        s.extend(ja.sample(garnet, 10, seed=2, start=50))
    assert s.extend(ja.sample(garnet, 10, seed=2, start=100)).num_samples == 110
    assert s.extend(ja.sample(garnet, 10, seed=3)).num_samples == 110  # another stream


def test_resume_keeps_the_files_precision_and_refuses_conflicting_options(tmp_path, capsys):
    out = tmp_path / "s.npz"
    base = ["sample", "--env", "garnet", "--states", "5", "--out", str(out), "--quiet"]
    assert main([*base, "--num-samples", "40", "--precision", "float64", "--sample-seed", "3"]) == 0
    assert main([*base, "--num-samples", "24", "--resume"]) == 0
    resumed = ja.load_sample(out)
    assert resumed.num_samples == 64 and resumed.info["precision"] == "float64" and resumed.seed == 3
    m = ja.envs.garnet(5, 3, 2, 3, seed=0)
    np.testing.assert_array_equal(resumed.returns, ja.sample(m, 64, seed=3, precision="float64").returns)
    for extra, message in ((["--sample-seed", "4"], "drop --sample-seed 4 (the file has 3)"),
                           (["--measure", "hull"], "drop --measure hull (the file has policy)"),
                           (["--chains", "4"], "drop --chains"),
                           (["--precision", "float32"], "the sample was drawn in float64")):
        assert main([*base, "--num-samples", "8", "--resume", *extra]) == 2, extra
        assert message in capsys.readouterr().err, extra
    assert ja.load_sample(out).num_samples == 64


def test_resume_with_malformed_parts_is_a_one_line_error(tmp_path, capsys):
    m = ja.envs.garnet(5, 3, 2, 3, seed=0)
    s = ja.sample(m, 20).extend(ja.sample(m, 20, start=20))
    broken = ja.ReturnSample(s.returns, "policy", seed=0, max_returns=s.max_returns, min_returns=s.min_returns,
                             info={"parts": [{"seed": 0, "num_samples": "many"}, {"seed": 0}]}, fingerprint=m.fingerprint)
    path = tmp_path / "b.npz"
    broken.save(path)
    assert main(["sample", "--env", "garnet", "--states", "5", "--out", str(path), "--resume", "--num-samples", "5"]) == 2
    assert "info['parts'][0] is malformed" in capsys.readouterr().err


# ---------------------------------------------------------------- 9. one-line errors, not tracebacks
@pytest.mark.parametrize("argv, message", [
    (["run", "--seed", "-1", "--rules", "utilitarian"], "seed: expected an integer in [0, 2**32), got -1"),
    (["reproduce", "--seed", "-1", "--instances", "1"], "seed: expected an integer in [0, 2**32), got -1"),
    (["run", "--env", "garnet", "--states", "200000000"], "states, actions, agents, branching: 200000000 x 3 x (3 + 2) entries"),
    (["run", "--num-samples", "-5"], "--num-samples: expected an integer >= 0, got -5"),
    (["run", "--rules", ""], "--rules: expected comma-separated rule names"),
    (["run", "--rules", " , "], "--rules: expected comma-separated rule names"),
])
def test_bad_command_lines_are_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


@pytest.mark.parametrize("content", [
    b"",                                   # zero bytes
    b"PK\x03\x04truncated",               # a truncated zip
    b"\x00\x01garbage" * 10,               # not a zip
])
def test_corrupt_instance_files_are_one_line_errors(tmp_path, capsys, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    assert main(["run", "--momdp", str(path), "--rules", "utilitarian"]) == 2
    err = capsys.readouterr().err
    assert "jaxagg: error: --momdp" in err or "jaxagg: error: path" in err
    assert "Traceback" not in err


def test_instance_file_contents_are_validated(tmp_path, capsys):
    m = ja.envs.garnet(4, 2, 2, 2, seed=0)
    data = m.to_dict()
    cases = {
        "strings.json": json.dumps({**data, "P": [["a"]]}),
        "names.json": json.dumps({**data, "agent_names": 7}),
        "info.json": json.dumps({**data, "info": [1, 2]}),
        "nan.json": json.dumps(data).replace('"R": [[[', '"R": [[[NaN, '),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["run", "--momdp", str(tmp_path / name), "--rules", "utilitarian"]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("jaxagg: error: ") and "Traceback" not in err, (name, err)
    metadata = json.dumps({k: v for k, v in data.items() if k not in ("P", "R", "mu")})
    np.savez(tmp_path / "extra.npz", P=m.P, R=m.R, mu=m.mu, metadata=np.array(metadata), gamma=np.array(0.5))
    with pytest.raises(ValidationError, match=r"unexpected entries \['gamma'\]"):
        ja.load(tmp_path / "extra.npz")
    np.savez(tmp_path / "text.npz", P=m.P, R=m.R, mu=m.mu, metadata=np.array("not json"))
    with pytest.raises(ValidationError, match="metadata that is not valid JSON"):
        ja.load(tmp_path / "text.npz")


def test_complex_rewards_and_nan_json_are_refused(tmp_path):
    m = ja.envs.garnet(4, 2, 2, 2, seed=0)
    with pytest.raises(ValidationError, match="R: expected real numbers, got a complex array"):
        ja.MOMDP(m.P, m.R + 1j, criterion="average")
    info_path = ja.compare(m, ["utilitarian"]).save_json(tmp_path / "r.json")
    json.loads(info_path.read_text(), parse_constant=lambda token: pytest.fail(f"{token} written into JSON"))
    from jaxagg import files

    written = files.write_json(tmp_path / "nan.json", {"x": float("nan"), "y": [1.0, float("inf")]})
    assert json.loads(written.read_text()) == {"x": None, "y": [1.0, None]}


def test_bad_rule_options_are_validation_errors(garnet):
    sample = ja.sample(garnet, 200)
    with pytest.raises(ValidationError, match="max_iterations: expected an integer >= 1, got 0"):
        ja.rules.get("nash")(garnet, max_iterations=0)
    with pytest.raises(ValidationError, match="order: expected a permutation of 0..2"):
        ja.rules.get("veto")(garnet, sample, order=[0.0, 1.0, 2.0])
    with pytest.raises(ValidationError, match="options: rule 'max-quantile' takes completion, delta; got 'levels'"):
        ja.rules.get("max-quantile")(garnet, sample, levels=3)
    with pytest.raises(ValidationError, match="options: rule 'approval-0.8' fixes q=0.8"):
        ja.rules.get("approval-0.8")(garnet, sample, q=0.9)


# ---------------------------------------------------------------- 4. any reward scale
SCALES = {"1e-12": [1e-12] * 3, "1e-6": [1e-6] * 3, "1e6": [1e6] * 3, "1e12": [1e12] * 3, "mixed": [1e-9, 1.0, 1e9]}
VOLUMETRIC = {"max-quantile": {}, "approval": {}, "approval-0.8": {}, "borda": {"levels": 10}, "borda-concave": {},
              "veto": {"epsilon": 0.05}}


@pytest.fixture(scope="module")
def unscaled():
    m = ja.envs.garnet(6, 3, 2, 3, seed=3, criterion="discounted", gamma=0.9)
    sample = ja.sample(m, 1500, seed=0, precision="float64")
    return m, sample, {name: ja.rules.get(name)(m, sample, **options) for name, options in VOLUMETRIC.items()}


def scaled_instance(m, sample, factors):
    R = m.R * np.asarray(factors)[:, None, None]
    scaled = m.with_rewards(R)
    for agent, factor in enumerate(factors):
        sample = sample.affine(agent, factor, 0.0)
    return scaled, sample.bind(scaled, ja.return_bounds(scaled))


@pytest.mark.slow
@pytest.mark.parametrize("scale", sorted(SCALES))
def test_volumetric_rules_do_not_care_about_the_reward_scale(unscaled, scale):
    m, sample, expected = unscaled
    scaled, scaled_sample = scaled_instance(m, sample, SCALES[scale])
    bounds, base_bounds = ja.return_bounds(scaled), ja.return_bounds(m)
    np.testing.assert_allclose(bounds.upper, base_bounds.upper * SCALES[scale], rtol=1e-9)
    for name, options in VOLUMETRIC.items():
        outcome = ja.rules.get(name)(scaled, scaled_sample, **options)
        base = expected[name]
        np.testing.assert_allclose(outcome.normalized, base.normalized, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(scaled_sample.rank(outcome.returns), sample.rank(base.returns), err_msg=name)
        for key in ("q_star", "count", "borda_score", "levels_reached"):
            if key in base.info:
                assert outcome.info[key] == base.info[key], (name, key)


@pytest.mark.parametrize("scale", [1e-12, 1e12])
def test_every_lp_and_the_welfare_rules_work_at_extreme_scales(scale):
    m = ja.envs.garnet(6, 3, 2, 3, seed=3, criterion="discounted", gamma=0.9)
    scaled = m.with_rewards(m.R * scale)
    bounds = ja.return_bounds(scaled)
    np.testing.assert_allclose(bounds.lower, ja.return_bounds(m).lower * scale, rtol=1e-9)
    assert not bounds.degenerate.any()
    for name in ja.rules.names(needs_sample=False):
        if name == "nash-raw":
            continue  # needs positive raw returns; garnet rewards are, and it is checked below
        outcome = ja.rules.get(name)(scaled)
        base = ja.rules.get(name)(m)
        np.testing.assert_allclose(outcome.normalized, base.normalized, atol=1e-6, err_msg=name)
    raw = ja.rules.get("nash-raw")(scaled)
    np.testing.assert_allclose(raw.returns, ja.rules.get("nash-raw")(m).returns * scale, rtol=1e-6)


# ---------------------------------------------------------------- 7. an agent constant over O
def constant_over_O_instance():
    """Two garnet agents and a third whose reward differs only in state 5, which every policy
    leaves at once and never re-enters: its average return is 0 for every policy."""
    base = ja.envs.garnet(5, 2, 2, 2, seed=1)
    P = np.zeros((6, 2, 6))
    P[:5, :, :5] = base.P
    P[5, :, 0] = 1.0
    R = np.zeros((3, 6, 2))
    R[:2, :5] = base.R
    R[2, 5, :] = [1.0, 3.0]
    with pytest.warns(ja.errors.DegenerateAgentWarning, match=r"agent\(s\) \[2\] get the same return from every policy"):
        m = ja.MOMDP(P, R, criterion="average")
        ja.return_bounds(m)
    return m


@pytest.mark.slow
def test_an_agent_constant_over_O_is_indifferent_in_every_rule():
    m = constant_over_O_instance()
    sample = ja.sample(m, 1000, seed=0)  # float32: its samples would be spread by rounding
    assert np.unique(sample.returns[:, 2]).size == 1
    with pytest.raises(ValidationError, match="'nash-raw' needs a policy where every agent's raw return is positive"):
        ja.rules.get("nash-raw")(m)  # agent 2's return is 0 whatever the policy
    for name in ja.rules.names():
        if name == "nash-raw":
            continue
        options = {"steps": 20, "restarts": 2} if name.startswith("tune") else {}
        outcome = ja.rules.get(name)(m, sample, **options)
        assert outcome.normalized[2] == 1.0, name
        assert sample.rank(outcome.returns)[2] == 1.0, name
    fair = ja.rules.get("max-quantile")(m, sample)
    assert fair.info["q_star"] == pytest.approx(sample.rank(fair.returns).min())  # the certificate agrees
    assert 2 in ja.rules.get("approval")(m, sample).info["approvers"]
    assert ja.rules.get("borda")(m, sample).info["levels_reached"][2] == 20


# ---------------------------------------------------------------- 2, 3. average reward beyond unichain
def two_classes():
    """Issue 11's case 2: closed classes {0, 1} and {2, 3} that cannot reach one another."""
    P = np.zeros((4, 2, 4))
    for s in range(4):
        b = 0 if s < 2 else 2
        P[s, 0, s] = 1
        P[s, 1, b + 1 - (s - b)] = 1
    R = np.zeros((2, 4, 2))
    R[0, 1, :] = 1
    R[0, 0, 0] = 0.5
    R[1, 2, :] = 1
    R[1, 3, 1] = 0.3
    return ja.MOMDP(P, R, mu=[1, 0, 0, 0], criterion="average")


def test_average_reward_with_several_end_components_gives_reachable_returns():
    """Issue 11's case 2: from mu = state 0 nothing reaches agent 1's class {2, 3}, so agent 1
    gets 0 under every policy (degenerate) and agent 0 ranges over [0.5, 1] (stay in 0: 0.5;
    move to 1 and stay: 1). The flow polytope claimed [0.5, 0.5]; O is now what mu reaches."""
    m = two_classes()
    assert ja.occupancy_polytope(m).multichain
    with pytest.warns(ja.errors.DegenerateAgentWarning, match=r"agent\(s\) \[1\]"):
        bounds = ja.return_bounds(m)
    np.testing.assert_allclose(bounds.lower, [0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(bounds.upper, [1.0, 0.0], atol=1e-12)
    outcome = ja.rules.get("egalitarian")(m)
    assert outcome.returns[1] == 0.0  # the best reachable worst-off value is 0
    np.testing.assert_allclose(m.returns(ja.occupancy_of_policy(m, outcome.policy)), outcome.returns, atol=1e-12)
    hull = ja.sample(m, 50, measure="hull")
    assert (hull.returns[:, 1] == 0.0).all() and (hull.returns[:, 0] >= 0.5 - 1e-9).all()
    for measure, match in (("uniform", "several maximal end components"), ("policy", "several closed classes")):
        with pytest.raises(ValidationError, match=match):
            ja.sample(m, 10, measure=measure)
    discounted = ja.MOMDP(m.P, m.R, mu=m.mu, criterion="discounted", gamma=0.99)
    with pytest.warns(ja.errors.DegenerateAgentWarning, match=r"agent\(s\) \[1\]"):  # nothing reaches its states
        outcome = ja.rules.get("egalitarian")(discounted)  # reachable from mu only: agent 1 gets nothing
    assert outcome.returns[1] == pytest.approx(0.0, abs=1e-9)


def test_an_outcome_that_mixes_recurrent_classes_carries_a_policy_mixture():
    """Issue 11's case 3: a communicating MDP whose egalitarian optimum mixes two recurrent
    classes; the stationary policy read from it gets [0.5, 1.5], not [0.75, 0.75]. The outcome
    carries a policy mixture of deterministic policies that reaches [0.75, 0.75] (e.g. 3/4 stay in
    class {1}, where agent 0 gets 1, and 1/4 stay in class {2}, where agent 1 gets 3; which
    vertices carry it depends on the simplex's path)."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = P[1, 0, 1] = P[1, 1, 0] = P[2, 0, 2] = P[2, 1, 0] = 1
    R = np.zeros((2, 3, 2))
    R[0, 1, 0] = 1
    R[1, 2, 0] = 3
    m = ja.MOMDP(P, R, criterion="average")
    for name in ("egalitarian", "leximin"):
        outcome = ja.rules.get(name)(m)
        np.testing.assert_allclose(outcome.returns, [0.75, 0.75], atol=1e-9)
        assert outcome.mixture is not None and len(outcome.mixture) == 2
        assert sum(w for w, _ in outcome.mixture) == pytest.approx(1.0, abs=1e-12)
        assert all(set(np.unique(pi)) <= {0.0, 1.0} for _, pi in outcome.mixture)
        np.testing.assert_allclose(ja.rules.outcome.mixture_returns(m, outcome.mixture), outcome.returns, atol=1e-9)
        np.testing.assert_array_equal(outcome.policy, outcome.mixture[0][1])  # the highest-weight component
    outcome = ja.rules.get("utilitarian")(m)  # a vertex: its stationary policy reaches it
    assert outcome.mixture is None
    np.testing.assert_allclose(m.returns(ja.occupancy_of_policy(m, outcome.policy)), outcome.returns, atol=1e-12)


def test_an_outcome_whose_returns_nothing_reaches_fails_loudly(garnet_average):
    outcome = ja.rules.get("utilitarian")(garnet_average)
    wrong = outcome.returns.copy()
    wrong[0] += 0.1 * ja.return_bounds(garnet_average).span[0]
    with pytest.raises(ja.errors.PolicyError, match="utilitarian: its stationary policy gives agent 0 a return of"):
        ja.rules.outcome.check_policy_reproduces(garnet_average, "utilitarian", outcome.policy, wrong)
    mixture = ((0.5, outcome.policy), (0.5, outcome.policy))
    with pytest.raises(ja.errors.PolicyError, match="its mixture of 2 policies gives agent 0"):
        ja.rules.outcome.check_policy_reproduces(garnet_average, "utilitarian", outcome.policy, wrong, mixture)


# ---------------------------------------------------------------- 6. discount factors near 1
@pytest.mark.slow
def test_discount_factors_near_one():
    with pytest.raises(ValidationError, match=r"gamma: supported up to 1 - 1e-06 .* use the average-reward criterion"):
        ja.envs.garnet(6, 3, 2, 3, seed=1, criterion="discounted", gamma=1 - 1e-7)
    m = ja.envs.garnet(6, 3, 2, 3, seed=1, criterion="discounted", gamma=1 - 1e-6)
    bounds = ja.return_bounds(m)
    for occupancies, values in ((bounds.argmin, bounds.lower), (bounds.argmax, bounds.upper)):
        for i in range(m.num_agents):
            policy = ja.policy_from_occupancy(occupancies[i], m.num_states, m.num_actions)
            achieved = m.returns(ja.occupancy_of_policy(m, policy))[i]
            assert abs(achieved - values[i]) <= 1e-8 * bounds.span[i]
    with pytest.raises(ValidationError, match="precision: float32 samples at gamma = 0.999999 are off by about 0.07"):
        ja.sample(m, 64, precision="float32")
    auto = ja.sample(m, 64)
    assert auto.info["precision"] == "float64"
    exact = np.stack([m.returns(ja.occupancy_of_policy(m, ja.policy_from_occupancy(d, 6, 3)))
                      for d in ja.sample_occupancies(m, np.arange(64), precision="float64")])
    assert np.max(np.abs(auto.returns - exact) / bounds.span) < 1e-7
    assert ja.sample(ja.envs.garnet(6, 3, 2, 3, seed=1, criterion="discounted", gamma=0.99), 8).info["precision"] == "float32"


# ---------------------------------------------------------------- 10. tiny samples
def test_a_one_sample_float32_sample_gives_a_certified_level(garnet):
    # What float32 rounding does to a sample at an agent's best policy: a hair above max_O J.
    bounds = ja.return_bounds(garnet)
    row = garnet.returns(bounds.argmax[0])
    row[0] = bounds.upper[0] + 3e-7 * bounds.span[0]
    sample = ja.ReturnSample(row[None], "policy", seed=0, max_returns=bounds.upper, min_returns=bounds.lower,
                             fingerprint=garnet.fingerprint)
    fair = ja.rules.get("max-quantile")(garnet, sample)
    assert fair.info["q_star"] == 1.0 == sample.rank(fair.returns).min()
    assert ja.rules.get("approval")(garnet, sample).info["count"] == 3


def test_opposite_agents_with_one_sample_reach_exactly_the_claimed_level():
    base = ja.envs.garnet(6, 3, 2, 1, seed=2, criterion="discounted", gamma=0.9)
    m = base.with_rewards(np.stack([base.R[0], -base.R[0]]))
    for seed in range(5):
        sample = ja.sample(m, 1, seed=seed, precision="float32")
        fair = ja.rules.get("max-quantile")(m, sample)
        assert fair.info["q_star"] == sample.rank(fair.returns).min() == 1.0, seed
        certificates = ja.metrics.sample_certificates(fair.returns, sample)
        assert certificates["quantile_level"] == fair.info["q_star"]


# ---------------------------------------------------------------- 11. no rule beats a rule on its own objective
@pytest.mark.slow
@pytest.mark.parametrize("instance", ["garnet", "attention"])
def test_no_rule_beats_borda_quantile_or_approval_on_their_own_objectives(instance):
    """The tables of issue 11 (`jaxagg run --env garnet --states 30 --num-agents 4 --criterion
    discounted --gamma 0.9`: borda scored 3.912 while three rules reached 4.000, because its top
    level asked for max_O J instead of the sample maximum) and of the default `jaxagg run`
    (borda 4.800 against max-quantile's 4.9215 before the local step)."""
    if instance == "garnet":
        m = ja.envs.garnet(30, 3, 2, 4, seed=0, criterion="discounted", gamma=0.9)
    else:
        m = ja.envs.attention_allocation(5, 3, "base", seed=0)
    sample = ja.sample(m, 20_000, seed=0)
    table = ja.compare(m, None, sample)
    assert not table.failures
    rows = {row["rule"]: row for row in table.rows()}
    for name, row in rows.items():
        assert row["borda_score"] <= rows["borda"]["borda_score"] + 1e-12, name
        assert row["quantile_level"] <= rows["max-quantile"]["quantile_level"] + 1e-12, name
        assert row["approvals_0.9"] <= rows["approval"]["approvals_0.9"], name
        assert row["approvals_0.8"] <= rows["approval-0.8"]["approvals_0.8"], name
    if instance == "garnet":
        assert rows["borda"]["borda_score"] == 4.0
