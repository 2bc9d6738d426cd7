"""The package's version (also ``jaxagg.__version__``), in a module of its own so that the
modules under the package (a sample records the version it was drawn with) import it directly.
The evaluation arithmetic changes with it: 0.2.0 changed GMRES's rotations and the Kronecker
product's layout, so its samples round differently from 0.1.0's; 0.2.1 computes the solvers'
float32 products in full precision on every device (a GPU's samples changed; a CPU's did not);
0.3.0 draws the policy and hull measures' Dirichlet rows from a counter-based hash instead of
``jax.random``'s threefry (:func:`jaxagg.kernels.policies.counter_bits`): every such sample changed;
0.4.0 evaluates policies by BiCGSTAB on accelerators up to 1024 states
(:func:`jaxagg.kernels.evaluation.default_solver`, recorded as ``info["evaluation"]["solver"]``;
a GPU's samples changed), and every sample at position ``i % block`` of its own block, so that a
run continued inside a block (``extend``, ``start=``, ``sample_occupancies``) equals one long run
bit for bit (such continuations changed by rounding; a CPU's runs from 0 did not); 0.4.1 gives
a CPU's dense-LU sampling blocks of 128 policies instead of 32
(:data:`jaxagg.kernels.returns.CPU_LU_BLOCK`; the block is recorded, and earlier samples replay
with theirs): small instances' default samples may round differently (on bench/lu_blocks.py's
instances they did not); 0.5.0 right-preconditions the Krylov solves on accelerators up to 1024
states with the inverse of the uniform policy's system
(:func:`jaxagg.kernels.evaluation.default_preconditioner`, recorded as
``info["evaluation"]["preconditioner"]``; a GPU's samples changed, a CPU's did not)."""

__version__ = "0.5.0"
