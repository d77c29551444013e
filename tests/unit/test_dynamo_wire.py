"""Items read straight from DynamoDB's JSON are exactly what botocore's parser returns."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import botocore.session
from botocore import parsers
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow.adapters.dynamo_wire import ITEM_MEMBERS, take_items

MODEL = botocore.session.get_session().get_service_model("dynamodb")

names = st.text(min_size=1, max_size=6)
texts = st.text(max_size=12)
numbers = st.one_of(
    st.integers(-(10**20), 10**20), st.decimals(allow_nan=False, allow_infinity=False, places=3)
)
blobs = st.binary(max_size=12)
leaves = st.one_of(
    st.builds(lambda s: {"S": s}, texts),
    st.builds(lambda n: {"N": str(n)}, numbers),
    st.builds(lambda b: {"B": b}, blobs),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda s: {"SS": sorted(s)}, st.sets(texts, min_size=1, max_size=3)),
    st.builds(lambda s: {"NS": sorted(str(n) for n in s)}, st.sets(st.integers(), min_size=1, max_size=3)),
    st.builds(lambda s: {"BS": sorted(s)}, st.sets(blobs, min_size=1, max_size=3)),
)
# Names chosen to look like type tags too ("B", "S", "M"...): the walk must not mistake them.
attribute_names = st.one_of(names, st.sampled_from(["B", "BS", "S", "N", "M", "L", "NULL"]))
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda m: {"M": m}, st.dictionaries(attribute_names, inner, max_size=3)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3)),
    ),
    max_leaves=8,
)
items = st.dictionaries(attribute_names, values, min_size=1, max_size=5)


def wire(value: Any) -> Any:
    """As DynamoDB writes it: binary values in base64."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    return value


def typed(value: Any) -> Any:
    """``value`` with each leaf's type beside it (``True == 1`` and key order do not count)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def parse(operation: str, document: dict[str, Any], *, directly: bool, status: int = 200) -> dict[str, Any]:
    """What a client makes of the response, as botocore's endpoint does it: the before-parse
    hook (when ``directly``), then the parser, then the hook's members on top."""
    model = MODEL.operation_model(operation)
    response = {"status_code": status, "headers": {}, "body": json.dumps(wire(document)).encode()}
    customized: dict[str, Any] = {}
    if directly:
        take_items(operation_model=model, response_dict=response, customized_response_dict=customized)
    assert model.output_shape is not None
    parsed: dict[str, Any] = parsers.create_parser("json").parse(response, model.output_shape)
    parsed.update(customized)
    return parsed


def responses() -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    capacity = st.just({"TableName": "t", "CapacityUnits": 1.5})
    page = st.fixed_dictionaries(
        {"Items": st.lists(items, max_size=4), "Count": st.integers(0, 4), "ScannedCount": st.integers(0, 9)},
        optional={"LastEvaluatedKey": items, "ConsumedCapacity": capacity},
    )
    return st.one_of(
        st.tuples(
            st.just("GetItem"),
            st.fixed_dictionaries({}, optional={"Item": items, "ConsumedCapacity": capacity}),
        ),
        st.tuples(st.just("Query"), page),
        st.tuples(st.just("Scan"), page),
        st.tuples(
            st.just("BatchGetItem"),
            st.fixed_dictionaries(
                {"Responses": st.dictionaries(names, st.lists(items, max_size=3), max_size=2)},
                optional={
                    "UnprocessedKeys": st.dictionaries(
                        names,
                        st.fixed_dictionaries({"Keys": st.lists(items, min_size=1, max_size=2)}),
                        max_size=1,
                    )
                },
            ),
        ),
    )


@settings(max_examples=300)
@given(responses())
def test_every_read_gives_what_botocore_gives(response: tuple[str, dict[str, Any]]) -> None:
    # Given a successful response of a read that returns items, of every attribute type
    operation, document = response
    # When a client reads its items directly, and one with botocore's parser alone
    direct = parse(operation, document, directly=True)
    parsed = parse(operation, document, directly=False)
    # Then both give the same, value for value and type for type (bytes for binary)
    assert typed(direct) == typed(parsed)


def test_the_items_are_not_walked_by_botocore() -> None:
    # Given a 20-message page
    message = {"PK": {"S": "CHAT#c"}, "seq": {"N": "7"}, "text": {"S": "hi"}, "sig": {"B": b"\x00\xff"}}
    model = MODEL.operation_model("Query")
    body = json.dumps(wire({"Items": [message] * 20, "Count": 20, "ScannedCount": 20})).encode()
    response: dict[str, Any] = {"status_code": 200, "headers": {}, "body": body}
    customized: dict[str, Any] = {}
    # When the hook runs before botocore's parser
    take_items(operation_model=model, response_dict=response, customized_response_dict=customized)
    # Then the parser is left only the page's counts, and the items are ready, binary decoded
    assert json.loads(response["body"]) == {"Count": 20, "ScannedCount": 20}
    assert customized["Items"][0] == {
        "PK": {"S": "CHAT#c"},
        "seq": {"N": "7"},
        "text": {"S": "hi"},
        "sig": {"B": b"\x00\xff"},
    }


def test_an_error_response_is_left_to_botocore() -> None:
    # Given a refused query (its body has no items, but an error)
    document = {"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "message": "no table"}
    # When a client reads it directly, and one with botocore's parser alone
    # Then both report the same error
    direct = parse("Query", document, directly=True, status=400)
    assert direct == parse("Query", document, directly=False, status=400)
    assert direct["Error"]["Code"] == "ResourceNotFoundException"


def test_other_operations_are_left_to_botocore() -> None:
    # Given the response of a write that returns the item it replaced
    document = {"Attributes": {"n": {"N": "1"}, "b": {"B": b"x"}}}
    # When a client reads it with the hook registered (it is not one of the reads)
    parsed = parse("PutItem", document, directly=True)
    # Then botocore parsed it, as always
    assert "PutItem" not in ITEM_MEMBERS
    assert parsed["Attributes"] == {"n": {"N": "1"}, "b": {"B": b"x"}}
    assert Decimal(parsed["Attributes"]["n"]["N"]) == 1
