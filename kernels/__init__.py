"""Pure JAX kernels: policy batches, occupancies, samplers (installed as ``jaxagg.kernels``).

Kernels never import solvers. The batched samplers arrive with the sampling issue; the float64
reference maps used by the solvers live in :mod:`jaxagg.solvers.polytope`.
"""
