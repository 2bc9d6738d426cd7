"""Drawing a group's samples: one reference-measure sample per instance, the group together."""

from __future__ import annotations

import time

from jaxagg.momdp import MOMDP
from jaxagg.samples import ReturnSample
from jaxagg.sampling import sample as sample_measure
from jaxagg.sweeps.spec import SampleSpec


def sample_group(momdps: list[MOMDP], spec: SampleSpec, seeds: list[int]) -> list[tuple[ReturnSample | BaseException, float]]:
    """One sample per instance (``spec``'s settings, ``seeds[k]`` for instance ``k``), with the
    seconds each took; an instance whose sampling fails gets its exception instead."""
    out = []
    for momdp, seed in zip(momdps, seeds):
        began = time.perf_counter()
        try:
            drawn: ReturnSample | BaseException = sample_measure(momdp, spec.num_samples, spec.measure, seed, **spec.options())
        except Exception as exc:  # recorded as the cells' failure
            drawn = exc
        out.append((drawn, time.perf_counter() - began))
    return out
