"""gates.canonical encodes exactly what the reference rfc8785 package does, faster."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gates.canonical import canonical_json

leaves = (st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1)
          | st.floats(allow_nan=False, allow_infinity=False) | st.text())
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
                      max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(values)
def test_same_bytes_as_the_reference(value):
    assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1.0, -3.0, 1e16, 1e22]),
                min_size=1), st.lists(st.text(), min_size=1))
def test_same_bytes_for_homogeneous_lists(floats, texts):
    value = {"scores": floats, "ids": texts, "pairs": tuple(texts)}
    assert canonical_json(value) == rfc8785.dumps(value)


@pytest.mark.parametrize("f", [0.0, -0.0, 1.0, -1.0, 1e21, 1e20, 123456789012345680000.0, 1e-6, 1e-7, 1.5e-7, 5e-324,
                               1.7976931348623157e308, 0.1, 1 / 3, 1e16, 9007199254740993.0, 2.5e-5, -4.2e-12, 1e300])
def test_number_layout_at_the_edges(f):
    assert canonical_json([f, {"x": f}]) == rfc8785.dumps([f, {"x": f}])


def test_what_the_reference_refuses_is_refused():
    for bad in (math.nan, math.inf, -math.inf, 2**53, -(2**53), {1: "x"}, object(), "\ud800", {"\ud800": 1}):
        with pytest.raises(Exception) as reference:
            rfc8785.dumps(bad)
        with pytest.raises(reference.type):
            canonical_json(bad)


def test_subclasses_go_through_the_reference():
    value = {"a": np.float64(0.1), "b": (1, 2.0), "c": True, "\U0001f600": 1, "\uffff": 2}
    assert canonical_json(value) == rfc8785.dumps(value)
