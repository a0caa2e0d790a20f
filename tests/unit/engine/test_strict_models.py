"""Strict request models and their refusals in the studio's error shape (engine.schema)."""
from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import Field

from engine.errors import StudioError
from engine.schema import Says, Strict


class Inner(Strict):
    size: Annotated[int, Field(ge=8, le=64), Says("Sizes go from 8 to 64.")] = 16


class Order(Strict):
    refused_code = "invalid_option"
    dataset_id: Annotated[int, Says("'dataset_id' must be the id of a dataset.", always=True)]
    epochs: Annotated[int, Field(ge=1, le=500), Says("Epochs must be between 1 and 500.")] = 10
    rate: float | None = None
    fast: bool = False
    kind: Literal["a", "b"] = "a"
    share: Annotated[int, Field(ge=0, le=100), Says("A share is a percentage.")] | None = None
    inner: Inner | None = None
    tags: list[str] = []


@pytest.mark.parametrize("body, code, field, words", [
    ({"dataset_id": 1, "epochs": "1"}, "invalid_option", "epochs", "must be a whole number"),
    ({"dataset_id": 1, "epochs": True}, "invalid_option", "epochs", "must be a whole number"),
    ({"dataset_id": 1, "epochs": 2.5}, "invalid_option", "epochs", "must be a whole number"),
    ({"dataset_id": 1, "epochs": 0}, "invalid_option", "epochs", "between 1 and 500"),
    ({"dataset_id": 1, "epochs": 10**40}, "invalid_option", "epochs", "between 1 and 500"),
    ({"dataset_id": 1, "epochs": None}, "invalid_option", "epochs", "cannot be null"),
    ({"dataset_id": 1, "rate": "fast"}, "invalid_option", "rate", "must be a number"),
    ({"dataset_id": 1, "rate": float("nan")}, "invalid_option", "rate", "must be a number"),
    ({"dataset_id": 1, "rate": float("inf")}, "invalid_option", "rate", "must be a number"),
    ({"dataset_id": 1, "fast": "true"}, "invalid_option", "fast", "true or false"),
    ({"dataset_id": 1, "fast": 1}, "invalid_option", "fast", "true or false"),
    ({"dataset_id": 1, "kind": "c"}, "invalid_option", "kind", "must be one of"),
    ({"dataset_id": 1, "share": 101}, "invalid_option", "share", "A share is a percentage."),
    ({"dataset_id": 1, "inner": {"size": 4}}, "invalid_field", "inner.size", "Sizes go from 8 to 64."),  # Inner's code
    ({"dataset_id": 1, "inner": {"colour": 4}}, "unknown_option", "inner.colour", "Unknown field 'inner.colour'"),
    ({"dataset_id": 1, "inner": 3}, "invalid_option", "inner", "must be a JSON object"),
    ({"dataset_id": 1, "tags": "x"}, "invalid_option", "tags", "must be a list"),
    ({"dataset_id": 1, "tags": [1]}, "invalid_option", "tags.0", "must be text"),
    ({"dataset_id": 1, "epoch": 3}, "unknown_option", "epoch", "Unknown field 'epoch'"),
    ({"dataset_id": "one"}, "invalid_option", "dataset_id", "must be the id"),
    ({}, "invalid_option", "dataset_id", "must be the id"),
    ([], "invalid_body", "body", "JSON object"),
    (None, "invalid_body", "body", "JSON object"),
])
def test_a_refusal_names_the_field_with_a_readable_message(body, code, field, words):
    with pytest.raises(StudioError) as refused:
        Order.parse(body)
    assert refused.value.code == code and refused.value.details["field"] == field
    assert words in refused.value.message


def test_a_missing_field_without_its_own_message_is_missing_field():
    class Named(Strict):
        name: str

    with pytest.raises(StudioError) as refused:
        Named.parse({})
    assert (refused.value.code, refused.value.message) == ("missing_field", "'name' is required.")


def test_valid_input_is_read_as_its_types():
    order = Order.parse({"dataset_id": 3, "epochs": 7, "rate": 1, "share": None, "inner": {}})
    assert (order.dataset_id, order.epochs, order.rate, order.share, order.inner.size) == (3, 7, 1.0, None, 16)
