"""Drawing a group's samples: one reference-measure sample per instance, the group together."""

from __future__ import annotations

import time

from jaxagg.errors import JaxaggError
from jaxagg.momdp import MOMDP
from jaxagg.samples import ReturnSample
from jaxagg.sampling import sample as sample_measure
from jaxagg.sampling import sample_instances
from jaxagg.sweeps.spec import SampleSpec


def sample_group(momdps: list[MOMDP], spec: SampleSpec, seeds: list[int]) -> list[tuple[ReturnSample | BaseException, float]]:
    """One sample per instance (``spec``'s settings, ``seeds[k]`` for instance ``k``), with the
    seconds each took; an instance whose sampling fails gets its exception instead.

    The ``policy`` measure of several instances goes through :func:`jaxagg.sample_instances`
    (one compiled call per group, bit-identical to :func:`jaxagg.sample` per instance). If that
    refuses the group (instances whose operators differ in shape, say) or fails on one instance,
    the instances are sampled one by one, so that only a failing instance fails."""
    if spec.measure == "policy" and len(momdps) > 1:
        began = time.perf_counter()
        try:
            samples = sample_instances(momdps, spec.num_samples, spec.measure, seeds, **spec.options())
        except JaxaggError:
            pass
        else:
            seconds = (time.perf_counter() - began) / len(momdps)
            return [(drawn, seconds) for drawn in samples]
    return [_one(momdp, spec, seed) for momdp, seed in zip(momdps, seeds)]


def _one(momdp: MOMDP, spec: SampleSpec, seed: int) -> tuple[ReturnSample | BaseException, float]:
    began = time.perf_counter()
    try:
        drawn: ReturnSample | BaseException = sample_measure(momdp, spec.num_samples, spec.measure, seed, **spec.options())
    except Exception as exc:  # recorded as the cells' failure
        drawn = exc
    return drawn, time.perf_counter() - began
