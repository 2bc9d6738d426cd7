"""Typed errors and warnings raised by jaxagg.

Every error says which argument (or which solve) is at fault, what was expected and what
came. All errors derive from :class:`JaxaggError`; input problems are also ``ValueError``s so
that generic ``except ValueError`` code keeps working. Two families, never mixed:

* :class:`ValidationError` (and its subclasses): the *input* is wrong; fix the call.
* :class:`SolverError` (and its subclasses): the input was fine but a solve or an iterative
  method did not produce a certified answer (infeasible, unbounded, out of time, not converged).

This module imports nothing of jaxagg: every layer (``solvers``, the ``jaxagg`` package) may
raise these. Kernels (``jaxagg.kernels``) raise plain ``ValueError`` and the jaxagg functions that
call them check their inputs first.
"""

from __future__ import annotations

from typing import Any


class JaxaggError(Exception):
    """Base class of every error raised on purpose by jaxagg."""


class ValidationError(JaxaggError, ValueError):
    """An argument has the wrong shape, type or value."""


class ShapeError(ValidationError):
    """An array argument has the wrong rank or shape."""


class DegenerateAgentError(ValidationError):
    """An agent's return is the same for every policy, so it has no preference at all."""


class DegenerateAgentWarning(UserWarning):
    """An agent's return is constant over the occupancy polytope (found by LP).

    Every policy is optimal for such an agent; its normalised return is defined as 1.
    """


class MixingWarning(UserWarning):
    """A Markov-chain sampler's diagnostics (split R-hat, effective sample size) suggest the
    chains have not mixed: the sample may not represent the target measure."""


class VersionWarning(UserWarning):
    """A sample was continued or merged across jax/jaxlib/jaxagg versions (on request): its samples are
    not bit-identical to one run in one version."""


class SolverError(JaxaggError):
    """HiGHS did not return an optimal solution.

    Attributes:
        result: the :class:`jaxagg.solvers.highs.SolveResult` of the failed solve (status,
            whatever point HiGHS had, objective, time).
    """

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


class ConvergenceError(SolverError):
    """An iterative method (cutting planes, Newton) stopped before reaching its tolerance."""


class PolicyError(SolverError):
    """A solve found an occupancy, but neither a stationary policy nor a policy mixture found for
    it reproduces its returns from the initial distribution (an Outcome must never report
    returns its policy does not achieve)."""


class InfeasibleError(SolverError):
    """The program has no feasible point."""


class UnboundedError(SolverError):
    """The objective is unbounded on the feasible set."""


class SolverTimeoutError(SolverError):
    """The time limit was reached before optimality was proven.

    Attributes:
        incumbent: the best feasible point found so far (``None`` if there is none).
    """

    @property
    def incumbent(self):
        return None if self.result is None else self.result.x


class WorkerError(JaxaggError):
    """A sweep's worker processes could not run (they died before finishing any cell, e.g.
    because the main module cannot be imported by a spawned process)."""
