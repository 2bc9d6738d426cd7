"""ReturnSample: quantile/rank conventions (SPEC §2), DKW band, save/load, extend, affine
invariance, instance fingerprints, validation."""

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxagg.errors import ShapeError, ValidationError
from jaxagg.samples import (
    MEASURES,
    SAMPLE_FORMAT,
    ReturnSample,
    load_sample,
)

# Agent 0: 10 distinct values given out of order; agent 1: ties.
COL0 = np.array([5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 10.0, 4.0, 8.0, 6.0])
COL1 = np.array([1.0, 1.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 4.0])


def hand_sample(**kwargs):
    kwargs.setdefault("max_returns", np.array([12.5, 4.5]))
    return ReturnSample(np.stack([COL0, COL1], axis=1), "policy", **kwargs)


def random_sample(N=500, n=3, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    return ReturnSample(rng.normal(size=(N, n)), kwargs.pop("measure", "uniform"), seed=seed, **kwargs)


# ------------------------------------------------------------------ construction
def test_fields_are_read_only_float64_copies():
    raw = np.stack([COL0, COL1], axis=1).astype(np.float32)
    s = ReturnSample(raw, "hull", seed=np.int64(3), max_returns=[12.5, 4.5], info={"dtype": np.dtype("float32").name, "n": np.int32(2)})
    assert (s.num_samples, s.num_agents) == (10, 2)
    assert s.returns.dtype == np.float64 and not s.returns.flags.writeable
    assert not s.max_returns.flags.writeable and s.min_returns is None
    assert s.seed == 3 and type(s.seed) is int
    assert s.info == {"dtype": "float32", "n": 2} and type(s.info["n"]) is int
    raw[0, 0] = 99.0
    assert s.returns[0, 0] == 5.0
    with pytest.raises(ValueError):
        s.returns[0, 0] = 1.0
    with pytest.raises(AttributeError):
        s.measure = "policy"
    assert repr(s) == "ReturnSample<hull: N=10, n=2, seed=3>"
    assert MEASURES == ("policy", "uniform", "hull")


def test_sorted_returns_cached_and_ascending():
    s = hand_sample()
    first = s.sorted_returns
    assert first.shape == (10, 2) and not first.flags.writeable
    np.testing.assert_array_equal(first[:, 0], np.arange(1.0, 11.0))
    np.testing.assert_array_equal(first[:, 1], np.sort(COL1))
    assert s.sorted_returns.base is first.base  # computed once
    np.testing.assert_array_equal(s.returns[:, 0], COL0)  # original order untouched


# -------------------------------------------------------------- quantile convention
def test_quantile_convention_on_hand_made_sample():
    s = hand_sample()
    np.testing.assert_array_equal(s.quantile(0.0), [1.0, 1.0])  # x_(1) = min
    np.testing.assert_array_equal(s.quantile(0.05), [1.0, 1.0])  # floor(0.5) + 1 = 1
    np.testing.assert_array_equal(s.quantile(0.1), [2.0, 1.0])  # x_(2)
    np.testing.assert_array_equal(s.quantile(0.5), [6.0, 3.0])  # x_(6)
    np.testing.assert_array_equal(s.quantile(0.95), [10.0, 4.0])  # x_(10)
    np.testing.assert_array_equal(s.quantile(0.999), [10.0, 4.0])  # sample max, not max_O J
    assert s.quantile(1.0).tolist() == [12.5, 4.5]  # tau(1) = max_O J_i exactly
    grid = s.quantile(np.array([0.0, 0.1, 1.0]))
    assert grid.shape == (3, 2)
    np.testing.assert_array_equal(grid, [[1.0, 1.0], [2.0, 1.0], [12.5, 4.5]])
    assert s.quantile(np.zeros((2, 3))).shape == (2, 3, 2)


def test_quantile_one_without_max_returns_is_sample_max():
    s = hand_sample(max_returns=None)
    np.testing.assert_array_equal(s.quantile(1.0), [10.0, 4.0])
    np.testing.assert_array_equal(s.top, [10.0, 4.0])


def test_quantile_index_rounds_float_products_to_the_intended_integer():
    s = random_sample(N=100, n=1)
    assert 0.29 * 100 < 29  # float rounding: a plain floor would give 28
    assert int(s.quantile_index(0.29)) == 29
    np.testing.assert_array_equal(s.quantile(0.29), s.sorted_returns[29])
    np.testing.assert_array_equal(s.quantile_index([0.0, 0.5, 0.999, 1.0]), [0, 50, 99, 100])
    assert int(s.quantile_index(np.nextafter(1.0, 0.0))) == 99  # q < 1 never means max_O J


def test_quantile_of_index():
    s = hand_sample()
    np.testing.assert_array_equal(s.quantile_of_index(0), [1.0, 1.0])
    np.testing.assert_array_equal(s.quantile_of_index(9), [10.0, 4.0])
    np.testing.assert_array_equal(s.quantile_of_index(10), [12.5, 4.5])  # k = N: max_O J
    np.testing.assert_array_equal(s.quantile_of_index(np.array([1, 10])), [[2.0, 1.0], [12.5, 4.5]])
    for q in np.linspace(0, 1, 21):
        np.testing.assert_array_equal(s.quantile(q), s.quantile_of_index(s.quantile_index(q)))


# ------------------------------------------------------------------- CDF and rank
def test_cdf_counts_ties_with_side_right():
    s = hand_sample()
    np.testing.assert_array_equal(s.cdf([0.5, 0.5]), [0.0, 0.0])
    np.testing.assert_array_equal(s.cdf([1.0, 1.0]), [0.1, 0.2])  # both 1s of agent 1 count
    np.testing.assert_array_equal(s.cdf([2.5, 2.0]), [0.2, 0.5])
    np.testing.assert_array_equal(s.cdf([10.0, 3.0]), [1.0, 0.9])
    np.testing.assert_array_equal(s.cdf([np.inf, -np.inf]), [1.0, 0.0])
    batch = np.array([[[1.0, 1.0], [2.5, 2.0]], [[10.0, 3.0], [0.0, 4.0]]])
    out = s.rank(batch)
    assert out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out, [[[0.1, 0.2], [0.2, 0.5]], [[1.0, 0.9], [0.0, 1.0]]])
    np.testing.assert_array_equal(s.rank(batch), s.cdf(batch))


@settings(max_examples=60, deadline=None)
@given(
    data=st.integers(1, 30).flatmap(
        lambda N: st.integers(1, 3).flatmap(
            lambda n: st.lists(st.lists(st.integers(-3, 3), min_size=n, max_size=n), min_size=N, max_size=N)
        )
    ),
    with_max=st.booleans(),
)
def test_quantile_is_the_generalised_inverse_of_the_cdf(data, with_max):
    values = np.array(data, dtype=np.float64) / 2.0  # small integer range: many ties
    N = values.shape[0]
    top = values.max(axis=0) + 0.25 if with_max else None
    s = ReturnSample(values, "policy", max_returns=top)
    for q in np.linspace(0.0, 1.0, 41):
        tau = s.quantile(q)
        assert np.all(s.rank(tau) >= q)  # tau(q) is q-fair for every agent
        if q < 1.0:
            # tau(q) = inf{x : F(x) > q}: fewer than floor(qN)+1 samples lie strictly below it
            below = np.sum(s.returns < tau, axis=0)
            assert np.all(below <= math.floor(q * N + 1e-9))
            assert np.all(s.rank(tau) > q)


# ---------------------------------------------------------------------- DKW band
def test_dkw_band():
    s = random_sample(N=500)
    assert s.dkw_band() == pytest.approx(math.sqrt(math.log(2 / 0.05) / 1000), rel=1e-15)
    assert s.dkw_band(0.01) == pytest.approx(math.sqrt(math.log(200) / 1000), rel=1e-15)
    assert random_sample(N=500_000, n=1).dkw_band() == pytest.approx(0.0019206, abs=1e-7)
    for bad in (0.0, 1.0, -0.1, float("nan"), "x"):
        with pytest.raises(ValidationError, match="delta: expected"):
            s.dkw_band(bad)


def test_dkw_band_of_correlated_chains_uses_the_smallest_effective_sample_size():
    chained = random_sample(N=500, info={"ess": [250.0, 125.0, 400.0], "rhat": [1.0, 1.0, 1.0]})
    assert chained.effective_size == 125.0
    assert chained.dkw_band() == pytest.approx(math.sqrt(math.log(2 / 0.05) / 250), rel=1e-15)
    assert random_sample(N=500, info={"ess": [900.0, 800.0, 700.0]}).effective_size == 500.0  # capped at N
    assert random_sample(N=500).effective_size == 500.0


def test_to_dict_is_json_summary():
    s = hand_sample(seed=7, min_returns=[0.0, 0.5], info={"chunk": 4})
    d = s.to_dict()
    json.dumps(d)
    assert d["format"] == SAMPLE_FORMAT and d["measure"] == "policy" and d["seed"] == 7
    assert (d["num_samples"], d["num_agents"]) == (10, 2)
    assert d["dkw_band"] == {"delta": 0.05, "epsilon": s.dkw_band(0.05)}
    assert d["max_returns"] == [12.5, 4.5] and d["min_returns"] == [0.0, 0.5]
    assert d["sample_max"] == [10.0, 4.0] and d["sample_min"] == [1.0, 1.0]
    assert d["info"] == {"chunk": 4}


# ---------------------------------------------------------------------- save/load
def test_save_load_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.normal(size=(257, 3)) * 1e3
    s = ReturnSample(values, "hull", seed=11, max_returns=values.max(0) + np.pi, min_returns=values.min(0) - np.e,
                     info={"dtype": "float64", "chunk": 64})
    path = s.save(tmp_path / "s.npz")
    t = load_sample(path)
    assert t.returns.tobytes() == s.returns.tobytes()
    assert t.max_returns.tobytes() == s.max_returns.tobytes()
    assert t.min_returns.tobytes() == s.min_returns.tobytes()
    assert (t.measure, t.seed, t.info) == ("hull", 11, {"dtype": "float64", "chunk": 64})
    # no bounds, no seed
    u = load_sample(ReturnSample(values, "policy").save(tmp_path / "u.npz"))
    assert u.max_returns is None and u.min_returns is None and u.seed is None
    with pytest.raises(ValidationError, match="path: expected a file name ending in .npz"):
        s.save(tmp_path / "s.npy")


def test_load_refuses_pickles_and_foreign_files(tmp_path):
    good = random_sample(N=5).save(tmp_path / "good.npz")
    with pytest.raises(ValidationError, match="path: no such file"):
        load_sample(tmp_path / "missing.npz")
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    with pytest.raises(ValidationError, match=r"is not a .npz archive \(not a zip file\)"):
        load_sample(text)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ValidationError, match="is not a readable .npz archive"):
        load_sample(broken)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, returns=np.array([{"evil": 1}], dtype=object), metadata=np.array(json.dumps({"format": SAMPLE_FORMAT})))
    with pytest.raises(ValidationError, match=r"object \(pickled\) array; refusing to unpickle"):
        load_sample(pickled)
    bare = tmp_path / "bare.npz"
    np.savez(bare, returns=np.ones((3, 2)))
    with pytest.raises(ValidationError, match="has no 'metadata' entry"):
        load_sample(bare)
    other = tmp_path / "other.npz"
    np.savez(other, returns=np.ones((3, 2)), metadata=np.array(json.dumps({"format": "jaxagg.momdp/1"})))
    with pytest.raises(ValidationError, match=r"expected format 'jaxagg.sample/2' or 'jaxagg.sample/1', got 'jaxagg.momdp/1'"):
        load_sample(other)
    garbled = tmp_path / "garbled.npz"
    np.savez(garbled, returns=np.ones((3, 2)), metadata=np.array("{not json"))
    with pytest.raises(ValidationError, match="metadata that is not valid JSON"):
        load_sample(garbled)
    no_returns = tmp_path / "no_returns.npz"
    np.savez(no_returns, metadata=np.array(json.dumps({"format": SAMPLE_FORMAT, "measure": "policy"})))
    with pytest.raises(ValidationError, match="has no 'returns' array"):
        load_sample(no_returns)
    bad_measure = tmp_path / "bad_measure.npz"
    np.savez(bad_measure, returns=np.ones((3, 2)), metadata=np.array(json.dumps({"format": SAMPLE_FORMAT, "measure": "lebesgue"})))
    with pytest.raises(ValidationError, match="measure: expected one of"):
        load_sample(bad_measure)


# ------------------------------------------------------------------------ extend
def test_extend_concatenates_and_records_parts():
    a = random_sample(N=30, n=2, seed=1, max_returns=[10.0, 10.0], info={"dtype": "float32", "chunk": 8})
    b = random_sample(N=20, n=2, seed=2, info={"dtype": "float32", "chunk": 16})
    c = random_sample(N=5, n=2, seed=3, min_returns=[-10.0, -10.0], info={"dtype": "float32"})
    ab = a.extend(b)
    assert ab.num_samples == 50 and ab.seed is None
    np.testing.assert_array_equal(ab.returns, np.concatenate([a.returns, b.returns]))
    np.testing.assert_array_equal(ab.max_returns, [10.0, 10.0])
    assert ab.info == {
        "dtype": "float32",
        "parts": [
            {"seed": 1, "num_samples": 30, "info": {"dtype": "float32", "chunk": 8}},
            {"seed": 2, "num_samples": 20, "info": {"dtype": "float32", "chunk": 16}},
        ],
    }
    abc = ab.extend(c)  # parts are flattened
    assert [p["seed"] for p in abc.info["parts"]] == [1, 2, 3]
    assert [p["num_samples"] for p in abc.info["parts"]] == [30, 20, 5]
    np.testing.assert_array_equal(abc.min_returns, [-10.0, -10.0])
    assert abc.num_samples == sum(p["num_samples"] for p in abc.info["parts"])
    same = random_sample(N=4, n=2, seed=5).extend(random_sample(N=6, n=2, seed=5, info={"start": 4}))
    assert same.seed == 5
    # the sorted cache of the new sample is its own
    np.testing.assert_array_equal(ab.sorted_returns, np.sort(ab.returns, axis=0))


def test_extend_validation():
    a = random_sample(N=10, n=2, max_returns=[10.0, 10.0])
    with pytest.raises(ValidationError, match="other: expected measure 'uniform' to match, got 'policy'"):
        a.extend(random_sample(N=10, n=2, measure="policy"))
    with pytest.raises(ValidationError, match="other: expected 2 agents to match, got 3"):
        a.extend(random_sample(N=10, n=3))
    with pytest.raises(ValidationError, match=r"other: expected max_returns \[10.0, 10.0\] to match .* got \[10.0, 11.0\]"):
        a.extend(random_sample(N=10, n=2, max_returns=[10.0, 11.0]))
    with pytest.raises(ValidationError, match="other: expected a ReturnSample, got ndarray"):
        a.extend(np.ones((3, 2)))


# ------------------------------------------------------------------------ affine
def test_affine_map_leaves_ranks_unchanged():
    s = random_sample(N=400, n=3, seed=4, max_returns=[5.0, 5.0, 5.0], min_returns=[-5.0, -5.0, -5.0], info={"k": 1})
    t = s.affine(1, 3.0, -7.0)
    np.testing.assert_allclose(t.returns[:, 1], 3.0 * s.returns[:, 1] - 7.0, rtol=0)
    np.testing.assert_array_equal(t.returns[:, [0, 2]], s.returns[:, [0, 2]])
    assert t.max_returns.tolist() == [5.0, 8.0, 5.0] and t.min_returns.tolist() == [-5.0, -22.0, -5.0]
    assert t.info == {"k": 1, "affine": [{"agent": 1, "scale": 3.0, "shift": -7.0}]}
    policies = np.random.default_rng(5).normal(size=(50, 3))
    moved = policies.copy()
    moved[:, 1] = 3.0 * moved[:, 1] - 7.0
    np.testing.assert_array_equal(t.rank(moved), s.rank(policies))
    np.testing.assert_array_equal(t.rank(t.returns), s.rank(s.returns))
    q = np.linspace(0, 1, 11)
    np.testing.assert_allclose(t.quantile(q)[:, 1], 3.0 * s.quantile(q)[:, 1] - 7.0, rtol=1e-15)
    assert s.returns[0, 1] != t.returns[0, 1]  # s itself is untouched
    with pytest.raises(ValidationError, match="scale: expected a positive number .* got -1.0"):
        s.affine(0, -1.0, 0.0)
    with pytest.raises(ValidationError, match="scale: expected a positive number .* got 0.0"):
        s.affine(0, 0.0, 0.0)
    with pytest.raises(ValidationError, match="shift: expected a finite number, got inf"):
        s.affine(0, 1.0, float("inf"))
    with pytest.raises(ValidationError, match=r"agent: expected an index in 0..2, got 3"):
        s.affine(3, 1.0, 0.0)


# -------------------------------------------------------------------- validation
def _values():
    return np.stack([COL0, COL1], axis=1)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"returns": COL0}, ShapeError, r"returns: expected a 2-d array, got shape \(10,\)"),
        ({"returns": np.ones((0, 2))}, ValidationError, r"returns: expected at least one sample \(row\), got shape \(0, 2\)"),
        ({"returns": np.ones((3, 0))}, ValidationError, r"returns: expected at least one agent \(column\), got shape \(3, 0\)"),
        ({"returns": np.where(_values() == 7.0, np.nan, _values())}, ValidationError,
         r"returns: expected finite numbers, found nan at index \(4, 0\)"),
        ({"returns": np.where(_values() == 4.0, -np.inf, _values())}, ValidationError,
         r"returns: expected finite numbers, found -inf at index \(7, 0\)"),
        ({"returns": [["a", "b"]]}, ValidationError, "returns: expected a numeric array"),
        ({"measure": "lebesgue"}, ValidationError, r"measure: expected one of \('policy', 'uniform', 'hull'\), got 'lebesgue'"),
        ({"measure": None}, ValidationError, "measure: expected one of .* got None"),
        ({"seed": 1.5}, ValidationError, r"seed: expected an integer in \[0, 2\*\*32\), got 1.5"),
        ({"seed": True}, ValidationError, r"seed: expected an integer in \[0, 2\*\*32\), got True"),
        ({"max_returns": [1.0, 2.0, 3.0]}, ShapeError, r"max_returns: expected shape \[2\] .* got \(3,\)"),
        ({"min_returns": [[0.0, 0.0]]}, ShapeError, r"min_returns: expected a 1-d array, got shape \(1, 2\)"),
        ({"max_returns": [np.nan, 5.0]}, ValidationError, "max_returns: expected finite numbers, found nan"),
        ({"max_returns": [12.0, 3.5]}, ValidationError,
         r"max_returns: expected every sampled return of agent 1 within it .* got a sample 4.0 above 3.5"),
        ({"min_returns": [0.0, 1.5]}, ValidationError,
         r"min_returns: expected every sampled return of agent 1 within it .* got a sample 1.0 below 1.5"),
        ({"max_returns": [12.0, 5.0], "min_returns": [13.0, 0.0]}, ValidationError,
         r"min_returns: expected <= max_returns for every agent, got 13.0 > 12.0 for agent 0"),
        ({"info": {"f": object()}}, ValidationError, "info: expected JSON-serialisable metadata"),
        ({"info": {"x": float("nan")}}, ValidationError, "info: expected JSON-serialisable metadata"),
        ({"info": [1, 2]}, ValidationError, "info: expected a dict of JSON-serialisable metadata, got list"),
    ],
)
def test_construction_validation(kwargs, error, pattern):
    args = {"returns": _values(), "measure": "policy", **kwargs}
    with pytest.raises(error, match=pattern):
        ReturnSample(**args)


def test_bounds_tolerate_float32_rounding():
    values = _values()
    s = ReturnSample(values, "policy", max_returns=[10.0 * (1 - 1e-7), 4.0], min_returns=[1.0 + 1e-7, 1.0])
    assert s.quantile(1.0)[0] == 10.0 * (1 - 1e-7)
    assert s.returns[:, 0].max() == 10.0 * (1 - 1e-7) and s.returns[:, 0].min() == 1.0 + 1e-7  # put back on the bounds


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda s: s.quantile(1.5), ValidationError, r"q: expected levels in \[0, 1\], got 1.5"),
        (lambda s: s.quantile(-0.1), ValidationError, r"q: expected levels in \[0, 1\], got -0.1"),
        (lambda s: s.quantile([0.2, float("nan")]), ValidationError, r"q: expected levels in \[0, 1\], got nan"),
        (lambda s: s.quantile("half"), ValidationError, r"q: expected a level in \[0, 1\] or an array of levels"),
        (lambda s: s.quantile(True), ValidationError, r"q: expected a level in \[0, 1\], got True"),
        (lambda s: s.quantile_of_index(11), ValidationError, r"k: expected sorted positions in 0..10 .* got 11"),
        (lambda s: s.quantile_of_index(np.array([0, -1])), ValidationError, r"k: expected sorted positions in 0..10 .* got -1"),
        (lambda s: s.quantile_of_index(2.0), ValidationError, r"k: expected integer sorted positions in 0..10, got 2.0"),
        (lambda s: s.cdf([1.0, 2.0, 3.0]), ShapeError, r"x: expected shape \[\.\.\., 2\] \(one value per agent\), got \(3,\)"),
        (lambda s: s.cdf(1.0), ShapeError, r"x: expected shape \[\.\.\., 2\] .* got \(\)"),
        (lambda s: s.rank([[1.0, np.nan]]), ValidationError, r"returns: expected numbers, found nan at index \(0, 1\)"),
        (lambda s: s.rank([["a", "b"]]), ValidationError, "returns: expected a numeric array"),
    ],
)
def test_query_validation(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(hand_sample())


def test_module_does_not_import_jax():
    import jaxagg.samples as samples

    tree = ast.parse(Path(samples.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"jax", "jaxlib", "pickle"}
