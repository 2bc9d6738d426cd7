"""The occupancy polytope O in standard form, ``A z = b, lower <= z <= upper`` with ``A`` of full
row rank, for tools that need it (polytope samplers, other LP solvers).

:func:`jaxagg.solvers.polytope.build_polytope` gives ``E z = b, z >= 0``; HiGHS tolerates its
redundant rows, many tools do not. Which rows are redundant (``E`` is ``[m, S*A + num_aux]``,
``flow = outflow - inflow`` the ``[S, S*A]`` flow block, ``h`` ranges over the space

    H = {h in R^S : h(s) = sum_j P(s, a, j) h(j) for every s and a}

of functions harmonic under every action, i.e. the left null space of ``flow``):

* **discounted** (``E = outflow - gamma inflow``): full row rank, nothing dropped. For any
  deterministic policy the columns ``(s, pi(s))`` form ``I - gamma P_pi^T``, nonsingular.
* **average reward, flow rows + normalisation** (``[flow; 1^T]``): a left null vector
  ``(h, l)`` has ``h^T flow = -l 1^T``; weighting the columns of any policy by its stationary
  distribution gives ``l = 0``, so the left null space is ``{(h, 0) : h in H}``.
* **average reward, multichain** (``[[flow, 0], [outflow, flow]]``, columns ``[d | y]``): a left
  null vector ``(u, v)`` has ``v in H`` and ``u(s) - (P_a u)(s) = -v(s)`` for every ``(s, a)``;
  averaging along any policy's Cesàro limit gives ``v = 0`` (``v`` is harmonic, so ``v(s)`` is
  its own long-run average, which the second equation sets to 0). So it is ``{(h, 0) : h in H}``.

So exactly ``dim H`` rows, all among the first S (flow) rows, are redundant under average reward.
``H`` is computed from the support: ``h`` is constant on each closed class of the graph "some
action can move s to s'" (it is harmonic for the all-actions-uniform chain, irreducible there) and
elsewhere equals its absorption average under that chain, ``h = U c`` with ``U [S, k]`` the
absorption probabilities into the k closed classes; ``c`` ranges over the null space of
``flow^T U`` (``[S*A, k]``, k small). When every state can reach one closed class (one maximal end
component: the usual case) ``H`` is the constants and one flow row goes. The dropped rows are
chosen by a pivoted QR of ``H``'s basis, so that the kept rows have full rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from jaxagg.solvers.polytope import OccupancyPolytope, closed_classes

NULL_TOL = 1e-9
"""Singular values of the (column-normalised) ``flow^T U`` below this count as zero."""


@dataclass(frozen=True, eq=False)
class StandardForm:
    """``{z : A z = b, lower <= z <= upper}``, ``A`` of full row rank; its projection onto the
    first ``dim`` columns is O.

    Attributes:
        A: ``[m', num_columns]`` CSR matrix (the rows of ``E`` kept, in their order).
        b: ``[m']`` right-hand side.
        lower, upper: ``[num_columns]`` bounds (0 and ``inf``: every column is a flow).
        columns: ``num_columns`` labels: ``("x", s, a)`` for the occupancy ``d(s, a)`` (column
            ``s*A + a``), then ``("y", s, a)`` for the multichain transient flow (column
            ``S*A + s*A + a``), which no return or objective looks at.
        dropped_rows: indices of the rows of ``E`` left out (redundant).
        kept_rows: indices of the rows of ``E`` kept (row i of ``A`` is row ``kept_rows[i]``).
        dim: S*A, the occupancy columns.
    """

    A: sp.csr_matrix
    b: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    columns: tuple[tuple[str, int, int], ...]
    dropped_rows: np.ndarray
    kept_rows: np.ndarray
    dim: int

    def to_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays (CSR parts of ``A``; ``columns`` as ``kind [num_columns]`` strings and
        ``state``, ``action`` ints), for :func:`numpy.savez` or any other tool."""
        A = self.A.tocsr()
        return {"A_data": A.data, "A_indices": A.indices, "A_indptr": A.indptr, "A_shape": np.asarray(A.shape),
                "b": self.b, "lower": self.lower, "upper": self.upper,
                "column_kind": np.asarray([c[0] for c in self.columns]),
                "column_state": np.asarray([c[1] for c in self.columns], dtype=np.int64),
                "column_action": np.asarray([c[2] for c in self.columns], dtype=np.int64),
                "dropped_rows": self.dropped_rows, "kept_rows": self.kept_rows}

    def save(self, path) -> None:
        """Write :meth:`to_dict` to an ``.npz`` file (``numpy.savez_compressed``)."""
        np.savez_compressed(path, **self.to_dict())


def standard_form(polytope: OccupancyPolytope) -> StandardForm:
    """O of ``polytope`` as :class:`StandardForm` (see the module docstring for which rows of
    ``polytope.E`` are dropped and why)."""
    E = sp.csr_matrix(polytope.E)
    S, A = polytope.num_states, polytope.num_actions
    dropped = np.zeros(0, dtype=np.int64) if polytope.criterion == "discounted" else redundant_flow_rows(E, S, A)
    kept = np.setdiff1d(np.arange(E.shape[0]), dropped)
    columns = tuple((kind, s, a) for kind in ("x", "y")[: 1 + (polytope.num_aux > 0)] for s in range(S) for a in range(A))
    n = polytope.num_columns
    return StandardForm(A=E[kept].tocsr(), b=np.asarray(polytope.b, dtype=np.float64)[kept], lower=np.zeros(n),
                        upper=np.full(n, np.inf), columns=columns, dropped_rows=dropped, kept_rows=kept, dim=S * A)


def redundant_flow_rows(E: sp.spmatrix, num_states: int, num_actions: int) -> np.ndarray:
    """``[dim H]`` sorted indices among the first S rows of an average-reward ``E`` whose removal
    leaves full row rank: pivots of a pivoted QR of :func:`harmonic_basis`'s ``[S, r]``."""
    basis = harmonic_basis(E, num_states, num_actions)
    _, _, pivots = scipy.linalg.qr(basis.T, mode="economic", pivoting=True)
    return np.sort(pivots[: basis.shape[1]]).astype(np.int64)


def harmonic_basis(E: sp.spmatrix, num_states: int, num_actions: int) -> np.ndarray:
    """``[S, r]``: a basis of H (functions harmonic under every action; module docstring), from
    the flow block ``E[:S, :S*A]`` of an average-reward O."""
    S, A = num_states, num_actions
    flow = sp.csr_matrix(E)[:S, : S * A]
    outflow = sp.kron(sp.identity(S, format="csr"), np.ones((1, A)), format="csr")
    inflow = outflow - flow  # [S, S*A]: P(s, a, s') at (s', s*A + a)
    uniform = ((inflow @ outflow.T).T / A).tocsr()  # [S, S]: the all-actions-uniform chain
    uniform.eliminate_zeros()
    absorption = _absorption(uniform)  # [S, k]
    constraint = (flow.T @ absorption)  # [S*A, k]: flow^T U c = 0
    scale = np.maximum(np.abs(absorption).max(axis=0), 1.0)
    _, sigma, vt = scipy.linalg.svd(np.asarray(constraint) / scale, full_matrices=True)
    rank = int((sigma > NULL_TOL * max(1.0, float(sigma.max(initial=0.0)))).sum())
    return absorption @ (vt[rank:].T / scale[:, None])


def _absorption(chain: sp.csr_matrix) -> np.ndarray:
    """``[S, k]``: the probability that ``chain [S, S]`` started in s ends in each of its k closed
    classes (1 on the class's own states)."""
    S = chain.shape[0]
    label, closed = closed_classes(chain > 0)
    member = (label[:, None] == closed[None, :]).astype(np.float64)  # [S, k]
    transient = np.flatnonzero(member.sum(axis=1) == 0)
    if transient.size:
        system = (sp.identity(transient.size, format="csc") - chain[transient][:, transient]).tocsc()
        into = np.asarray(chain[transient] @ member)  # member is 0 on transient states here
        member[transient] = scipy.sparse.linalg.splu(system).solve(into)
    return member.reshape(S, -1)
