"""Property tests (hypothesis): whatever a careless or hostile user hands to construction or to
the file readers, jaxagg raises its own typed errors (``jaxagg.errors``), never anything else,
and never unpickles."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxagg as ja
from jaxagg.errors import JaxaggError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.complex_numbers(),
                    st.text(max_size=3), st.none(), st.booleans())
arrays = st.one_of(
    hnp.arrays(dtype=st.sampled_from([np.float64, np.float32, np.int64, np.complex128, np.bool_]),
               shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=3)),
    st.lists(st.lists(numbers, max_size=3), max_size=3),  # ragged, mixed types
    numbers,
)


def only_typed_errors(call) -> None:
    with contextlib.suppress(JaxaggError):  # anything else propagates and fails the test
        call()


@SETTINGS
@given(P=arrays, R=arrays, mu=st.one_of(st.none(), arrays), criterion=st.sampled_from(["average", "discounted", "x", 3]),
       gamma=st.one_of(st.none(), st.floats(), st.text(max_size=2)))
def test_momdp_construction_raises_only_typed_errors(P, R, mu, criterion, gamma):
    only_typed_errors(lambda: ja.MOMDP(P, R, mu, criterion=criterion, gamma=gamma))


@SETTINGS
@given(returns=arrays, measure=st.sampled_from(["policy", "uniform", "hull", "x", None]),
       seed=st.one_of(st.none(), st.integers(-5, 2**33), st.floats()), bounds=st.one_of(st.none(), arrays),
       info=st.one_of(st.dictionaries(st.text(max_size=3), numbers, max_size=3), st.integers()),
       fingerprint=st.one_of(st.none(), st.text(max_size=70)))
def test_sample_construction_raises_only_typed_errors(returns, measure, seed, bounds, info, fingerprint):
    only_typed_errors(lambda: ja.ReturnSample(returns, measure, seed=seed, max_returns=bounds, info=info,
                                              fingerprint=fingerprint))


def npz_bytes(entries: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **entries)
    return buffer.getvalue()


metadata_values = st.one_of(
    st.just(json.dumps({"format": "jaxagg.momdp/1", "criterion": "average"})),
    st.just(json.dumps({"format": "jaxagg.sample/2", "measure": "policy", "seed": 0, "info": {}})),
    st.text(max_size=20), st.just("[1, 2]"), st.just('{"format": "jaxagg.sample/2", "info": [1]}'),
)


@SETTINGS
@given(data=st.data())
def test_file_readers_raise_only_typed_errors_and_never_unpickle(tmp_path, data, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    kind = data.draw(st.sampled_from(["bytes", "npz", "truncated", "json"]))
    if kind == "bytes":
        content = data.draw(st.binary(max_size=200))
    elif kind == "json":
        content = data.draw(st.one_of(st.text(max_size=50), st.just('{"P": [["a"]], "R": [[1]]}'),
                                      st.just('{"P": NaN}'), st.just("[]"))).encode()
    else:
        entries = {name: data.draw(hnp.arrays(dtype=st.sampled_from([np.float64, np.int8, np.complex64]),
                                              shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3)))
                   for name in data.draw(st.lists(st.sampled_from(["P", "R", "mu", "returns", "gamma", "x"]), max_size=4))}
        if data.draw(st.booleans()):
            entries["metadata"] = np.array(data.draw(metadata_values))
        if data.draw(st.booleans()):
            entries["evil"] = np.array([object()], dtype=object)
        content = npz_bytes(entries)
        if kind == "truncated":
            content = content[: data.draw(st.integers(0, max(0, len(content) - 1)))]
    for suffix in (".npz", ".json"):
        path = tmp_path / f"input{suffix}"
        path.write_bytes(content)
        only_typed_errors(lambda path=path: ja.load(path))
        only_typed_errors(lambda path=path: ja.load_sample(path))


def test_an_object_array_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("metadata.npy", "w") as handle:
            np.save(handle, np.array('{"format": "jaxagg.sample/2", "measure": "policy"}'))
        with archive.open("returns.npy", "w") as handle:
            np.save(handle, np.array([[object()]], dtype=object), allow_pickle=True)
    with pytest.raises(ja.errors.ValidationError, match="refusing to unpickle"):
        ja.load_sample(path)
