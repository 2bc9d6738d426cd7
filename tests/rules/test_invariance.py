"""Every volumetric rule is invariant to a positive affine change of one agent's reward (and of
its sample): SPEC §2. (The welfare counterpart, utilitarian changing, is in test_welfare.py.)"""

import numpy as np
import pytest

import jaxagg as ja

VOLUMETRIC = {
    "max-quantile": {},
    "borda": {"levels": 8},
    "borda-concave": {},
    "approval": {},
    "approval-0.8": {},
    "veto": {"epsilon": 0.05},
}


@pytest.fixture(scope="module")
def instance():
    m = ja.envs.garnet(8, 3, 8, agents=3, seed=4)
    return m, ja.sample(m, 1500, seed=0, precision="float64")


@pytest.mark.parametrize("name", sorted(VOLUMETRIC))
@pytest.mark.parametrize("agent, scale, shift", [(0, 3.0, -7.0), (2, 0.25, 40.0)])
def test_positive_affine_change_leaves_the_outcome_unchanged(instance, name, agent, scale, shift):
    m, sample = instance
    base = ja.rules.get(name)(m, sample, **VOLUMETRIC[name])
    R = m.R.copy()
    R[agent] = scale * R[agent] + shift
    changed = ja.rules.get(name)(m.with_rewards(R), sample.affine(agent, scale, shift).bind(m.with_rewards(R)), **VOLUMETRIC[name])
    tolerance = 1e-4 if name == "borda-concave" else 1e-7  # the concave method refits its CDFs numerically
    np.testing.assert_allclose(changed.occupancy, base.occupancy, atol=tolerance)
    np.testing.assert_allclose(changed.normalized, base.normalized, atol=tolerance)
