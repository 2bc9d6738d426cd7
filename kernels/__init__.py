"""Pure JAX kernels (installed as ``jaxagg.kernels``): policy batches, occupancies, the streaming
samplers, hit-and-run, smoothed CDFs and the gradient ascent.

The bottom layer: kernels import jax, numpy, optax and other kernels, nothing else of jaxagg
(``tests/test_layers.py`` keeps it so). They raise plain ``ValueError``; the ``jaxagg`` functions
that call them validate their inputs first and raise typed errors.
"""
