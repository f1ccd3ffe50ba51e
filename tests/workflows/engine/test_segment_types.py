"""Dify's ``SegmentType.infer_segment_type`` of JSON values, the one inference both the parameter extractor's
and the conversation variables' validation messages name a value's type with."""

from __future__ import annotations

from typing import Any

import pytest

from app.workflows.engine.variables import segment_type


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "none"),
        (True, "boolean"),
        (3, "integer"),
        (2.5, "float"),
        ("a", "string"),
        ({"k": 1}, "object"),
        # Dify's empty set of element types is a subset of the numerical ones
        ([], "array[number]"),
        ([1, 2.5], "array[number]"),
        (["a", "b"], "array[string]"),
        ([True, False], "array[boolean]"),
        ([{}, {"k": 1}], "array[object]"),
        ([None], "array[any]"),
        (["a", 2], "array[any]"),
        ([True, 1], "array[any]"),
        ([[1], [2]], "array[any]"),
        (object(), None),
        ([1, object()], None),
    ],
)
def test_the_inferred_type_is_difys(value: Any, expected: str | None) -> None:
    assert segment_type(value) == expected
