"""Patches of moto for the local stack: a fork of a few of moto's methods, pinned to one moto.

moto is written for correctness in small single-threaded tests. The local stack uses it
differently: requests arrive on several threads, tables hold thousands of items, queues
thousands of messages, and the functions read DynamoDB streams as Lambda would. The
patches here are of three kinds (docs/local-stack.md, "Patches of moto", has a note on
each: what moto does, what the patch does, why it behaves the same):

- **atomicity** (``dynamodb.locks``): one re-entrant lock per DynamoDB backend, held for the
  whole of every DynamoDB and DynamoDB Streams request (parsing, the operation and the
  serialized answer) and by the backend's item operations called directly. Real DynamoDB
  applies each request atomically; moto does not (an UpdateItem mutates the stored item
  in place, a transaction checks then writes), so without it two threads see or make
  states no table can have. Nothing here relies on a caller serializing requests.
- **speed-ups**: the same behaviour as moto's without a cost that grows with the data;
  each is a replacement of one of moto's methods with the same signature, written so
  that moto could take it as it is.
- **fidelity**: where moto differs from DynamoDB in a way the application sees
  (``dynamodb.update_item``: an UpdateItem that creates an item streams one INSERT with
  the whole new image, as DynamoDB does, not moto's keys-only INSERT first; a failed
  update changes nothing).

``install()`` applies every patch (idempotent) and refuses a moto version the patches were
not tested with. ``applied(*names)`` applies only some of them for a while (the
differential tests in ``tests/local/test_moto_patches.py`` run the same operations with
and without each patch). Installed by the emulated AWS server, the in-process stack of the
integration tests, and the campaign-loader benchmark, so all of them run the same moto.
"""

from __future__ import annotations

import bisect
import contextvars
import copy
import functools
import json
import pickle
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import moto
from moto import backends as moto_backends
from moto.core import responses as moto_core_responses
from moto.core.common_types import TYPE_RESPONSE
from moto.core.model import ListShape, MapShape, Shape, StructureShape
from moto.core.serialize import BaseJSONSerializer
from moto.core.utils import camelcase_to_underscores
from moto.dynamodb import responses as moto_dynamodb_responses
from moto.dynamodb.comparisons import create_condition_expression_parser, get_expected, get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    InvalidAttributeTypeError,
    ItemSizeTooLarge,
    ItemSizeToUpdateTooLarge,
    MockValidationException,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models import utilities as moto_dynamodb_utilities
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import StreamShard, Table
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
    # moto's ast_nodes starts with "# type: ignore": mypy sees none of its names (Any here).
    DepthFirstTraverser,
    Node,
    UpdateExpression,
)
from moto.dynamodb.parsing.executors import UpdateExpressionExecutor
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
from moto.dynamodb.parsing.validators import ActionCountValidator, UpdateExpressionValidator
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.events.utils import EventMessageType, EventTemplateParser
from moto.sqs.models import Message, Queue, SQSBackend

# The moto versions these patches were written for and tested with (tests/local/test_moto_patches.py).
TESTED_MOTO_VERSIONS = ("5.2.5",)


class UntestedMotoVersion(RuntimeError):
    """The installed moto is not one the patches were tested with."""


def check_moto_version(installed: str | None = None) -> None:
    """Refuse a moto the patches were not tested with (they replace moto's own methods)."""
    version = moto.__version__ if installed is None else installed
    if version not in TESTED_MOTO_VERSIONS:
        raise UntestedMotoVersion(
            f"local/moto_patches.py replaces methods of moto {' / '.join(TESTED_MOTO_VERSIONS)} and was "
            f"tested with that only, but moto {version} is installed. Either install the pinned moto "
            "(`.venv/bin/pip install -r requirements/dev.txt`; `make test` does it), or port the patches: "
            "compare each replaced method with the new moto's (docs/local-stack.md, 'Patches of moto'), "
            "run `.venv/bin/pytest tests/local/test_moto_patches.py`, then add the version to "
            "TESTED_MOTO_VERSIONS."
        )


# ---- atomicity: one lock per DynamoDB backend ------------------------------------------------


def items_lock(backend: DynamoDBBackend) -> threading.RLock:
    """The backend's lock: held for the whole of each request, and by each item operation.

    Created on first use (``dict.setdefault`` is atomic, so two threads get the same lock);
    re-entrant because operations call one another (a transaction calls put_item).
    """
    lock: threading.RLock | None = backend.__dict__.get("_chatflow_items_lock")
    if lock is None:
        lock = backend.__dict__.setdefault("_chatflow_items_lock", threading.RLock())
    return lock


def _locked_backend_method(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        with items_lock(self):
            return method(self, *args, **kwargs)

    return locked


def _locked_dynamodb_requests(call_action: Callable[[DynamoHandler], TYPE_RESPONSE]) -> Any:
    @functools.wraps(call_action)
    def locked(self: DynamoHandler) -> TYPE_RESPONSE:
        with items_lock(self.dynamodb_backend):
            return call_action(self)

    return locked


def _locked_stream_requests(call_action: Callable[[DynamoDBStreamsHandler], TYPE_RESPONSE]) -> Any:
    """Stream reads take the lock of the tables' backend: a reader never sees the records of a
    transaction that is still going to be rolled back."""

    @functools.wraps(call_action)
    def locked(self: DynamoDBStreamsHandler) -> TYPE_RESPONSE:
        with items_lock(dynamodb_backends[self.current_account][self.region]):
            return call_action(self)

    return locked


# ---- TransactWriteItems: moto's, rolled back from an undo log instead of table copies ---------


class _UndoLog:
    """What a transaction wrote, to put back: each item as it was before the transaction's
    first write to it, and each stream shard's length before the transaction's first record."""

    def __init__(self) -> None:
        self._items: dict[tuple[int, DynamoType, DynamoType | None], tuple[Table, Item | None]] = {}
        self._shards: dict[int, tuple[StreamShard, int]] = {}

    def remember(self, table: Table, key: tuple[DynamoType, DynamoType | None], before: Item | None) -> None:
        self._items.setdefault((id(table), *key), (table, before))
        shard = table.stream_shard
        if shard is not None:
            self._shards.setdefault(id(shard), (shard, len(shard.items)))

    def roll_back(self) -> None:
        for (_, hash_value, range_value), (table, before) in reversed(self._items.items()):
            if table.range_key_attr is None:
                if before is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = before  # type: ignore[assignment]
            elif before is not None:
                table.items[hash_value][range_value] = before
            elif hash_value in table.items:
                table.items[hash_value].pop(range_value, None)
                if not table.items[hash_value]:
                    del table.items[hash_value]
        for shard, length in self._shards.values():
            del shard.items[length:]


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's ``DynamoDBBackend.transact_write_items``, rolled back from an undo log.

    moto deep-copies every table the transaction touches before starting, and puts the
    copies back when it is cancelled: one transaction costs as much as its tables are big
    (seconds with thousands of items), and the copy replaces the table object, so stream
    readers holding an iterator of the old one never see a later record. This is moto's
    loop, line for line (the same checks, in the same order, giving the same errors and
    cancellation reasons), except that each write skips the condition just evaluated for it
    (moto parses and evaluates it a second time), and that it keeps each item as it was
    before its first write (and each stream's length) and puts exactly those back: the same
    state as moto's rollback, in time proportional to the transaction. Any failure rolls back, including
    one moto lets through half-applied (an item with two operations after earlier writes).
    It holds the backend's lock throughout, so no other request sees it half done.
    """
    with items_lock(self):
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        undo = _UndoLog()
        try:
            _apply_transaction(self, transact_items, undo)
        except BaseException:
            undo.roll_back()
            raise


def _apply_transaction(self: DynamoDBBackend, transact_items: list[dict[str, Any]], undo: _UndoLog) -> None:
    target_items: set[tuple[str, str]] = set()

    def check_unicity(table_name: str, key: dict[str, Any]) -> None:
        item = (str(table_name), str(dict(sorted(key.items()))))
        if item in target_items:
            raise MultipleTransactionsException()
        target_items.add(item)

    errors: list[tuple[str, str, dict[str, Any] | None] | tuple[None, None, None]] = []
    for item in transact_items:
        original_item: dict[str, Any] | None = None
        if len(list(item.keys())) > 1:
            raise TransactWriteSingleOpException
        try:
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table_name = op["TableName"]
            condition_expression = op.get("ConditionExpression")
            expression_attribute_names = op.get("ExpressionAttributeNames")
            expression_attribute_values = op.get("ExpressionAttributeValues")
            if op_type == "Put":
                attrs = op["Item"]
                table = self.get_table(table_name)
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            check_unicity(table_name, key)
            current = self.get_item(table_name, key)
            if condition_expression is not None:
                condition_op = get_filter_expression(
                    condition_expression, expression_attribute_names, expression_attribute_values
                )
                if not condition_op.expr(current):
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        original_item = current.to_json()["Attributes"]
                    raise ConditionalCheckFailed(item=original_item)
            if op_type != "ConditionCheck":
                table = self.get_table(table_name)
                # An update changes the stored item in place: keep a copy of it.
                undo.remember(
                    table,
                    self.get_keys_value(table, key),
                    copy.deepcopy(current) if op_type == "Update" else current,
                )
            # The condition was evaluated just above, under the backend's lock, on the item as
            # it is: the write itself need not parse and evaluate it again.
            if op_type == "Put":
                self.put_item(table_name, op["Item"])
            elif op_type == "Delete":
                self.delete_item(table_name, key)
            elif op_type == "Update":
                self.update_item(
                    table_name,
                    key,
                    update_expression=op["UpdateExpression"],
                    expression_attribute_names=expression_attribute_names,
                    expression_attribute_values=expression_attribute_values,
                )
            errors.append((None, None, None))
        except (MultipleTransactionsException, MockValidationException):
            raise
        except ConditionalCheckFailed as e:
            errors.append(("ConditionalCheckFailed", str(e.message), original_item))
        except Exception as e:
            errors.append((type(e).__name__, str(e), original_item))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)


# ---- UpdateItem: one stream record, nothing changed on failure --------------------------------


def _new_item(table: Table, hash_value: DynamoType, range_value: DynamoType | None) -> Item:
    """The keys-only item an UpdateItem starts from, with the checks moto's ``put_item`` makes
    of those keys (type, size), but neither stored nor streamed."""
    data: dict[str, Any] = {table.hash_key_attr: {hash_value.type: hash_value.value}}
    if range_value:
        data[table.range_key_attr] = {range_value.type: range_value.value}  # type: ignore[index]
    if hash_value.type != table.hash_key_type:
        raise InvalidAttributeTypeError(
            table.hash_key_attr, expected_type=table.hash_key_type, actual_type=hash_value.type
        )
    if range_value and range_value.type != table.range_key_type:
        raise InvalidAttributeTypeError(
            table.range_key_attr, expected_type=table.range_key_type, actual_type=range_value.type
        )
    table._validate_item_types(data)
    table._validate_key_sizes(data)
    return Item(hash_value, range_value, data)


def _update_item(
    self: DynamoDBBackend,
    table_name: str,
    key: dict[str, dict[str, Any]],
    update_expression: str,
    expression_attribute_names: dict[str, Any],
    expression_attribute_values: dict[str, Any],
    attribute_updates: dict[str, Any] | None = None,
    expected: dict[str, Any] | None = None,
    condition_expression: str | None = None,
    return_values_on_condition_check_failure: str | None = None,
) -> Item:
    """moto's ``DynamoDBBackend.update_item``, applied to a copy that replaces the item at the end.

    moto stores a keys-only item first when the update creates one (streaming a keys-only
    INSERT, then a second INSERT with the whole item), and changes an existing item in
    place (an update failing half-way, such as one growing the item past the size limit,
    leaves the actions before it applied). DynamoDB streams one INSERT with the full new
    image and applies an update entirely or not at all. Here the same checks run in the
    same order (same errors), the update is applied to a copy (moto deep-copies the item
    anyway, for the stream's old image), and the copy is stored and streamed once.
    """
    with items_lock(self):
        table = self.get_table(table_name)
        update_expression_ast: Any = None
        if update_expression:
            # Parse the expression to get its validation errors first, as moto does.
            update_expression_ast = UpdateExpressionParser.make(update_expression)
        if all([table.hash_key_attr in key, table.range_key_attr in key]):
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value: DynamoType | None = DynamoType(key[table.range_key_attr])  # type: ignore[index]
        elif table.hash_key_attr in key:
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = None
        else:
            hash_value = DynamoType(key)
            range_value = None
        current = table.get_item(hash_value, range_value)
        if not expected:
            expected = {}
        if not get_expected(expected).expr(current):
            raise ConditionalCheckFailed
        condition_op = create_condition_expression_parser(
            condition_expression, expression_attribute_names, expression_attribute_values
        ).parse()
        if not condition_op.expr(current):
            if return_values_on_condition_check_failure == "ALL_OLD" and current is not None:
                raise ConditionalCheckFailed(item=current.to_json()["Attributes"])
            raise ConditionalCheckFailed
        if current is None:
            if update_expression:
                # Validate the expression before creating anything, as moto does (moto
                # validates a deep copy of the tree; this is a tree of its own, parsed again).
                _validate_in_place(
                    UpdateExpressionParser.make(update_expression),
                    expression_attribute_names,
                    expression_attribute_values,
                    Item(hash_value, range_value, attrs={}),
                    table,
                )
            item = _new_item(table, hash_value, range_value)
        else:
            item = copy.deepcopy(current)
        if attribute_updates:
            item.validate_no_empty_key_values(attribute_updates, table.attribute_keys)
        if update_expression:
            validated_ast = _validate_in_place(
                update_expression_ast, expression_attribute_names, expression_attribute_values, item, table
            )
            validated_ast.normalize()
            try:
                UpdateExpressionExecutor(validated_ast, item, expression_attribute_names).execute()
            except ItemSizeTooLarge:
                raise ItemSizeToUpdateTooLarge() from None
        else:
            item.update_with_attribute_updates(attribute_updates)  # type: ignore[arg-type]
        if range_value:
            table.items[hash_value][range_value] = item
        else:
            table.items[hash_value] = item  # type: ignore[assignment]
        if table.stream_shard is not None:
            table.stream_shard.add(current, item)
        return item


def _validate_in_place(
    ast: Node,
    expression_attribute_names: dict[str, str] | None,
    expression_attribute_values: dict[str, dict[str, Any]] | None,
    item: Item,
    table: Table,
) -> Node:
    """``UpdateExpressionValidator(ast, ...).validate()`` on ``ast`` itself, not on a deep copy.

    moto's validator deep-copies the expression's tree first (a large share of an UpdateItem's
    time here), which protects a tree that is used again. The update's tree is parsed for
    this request and this is its last use, so the copy protects nothing: the same
    processors run, in the same order, on the tree itself.
    """
    validator = UpdateExpressionValidator.__new__(UpdateExpressionValidator)
    validator.expression_attribute_names = expression_attribute_names  # type: ignore[assignment]
    validator.expression_attribute_values = expression_attribute_values  # type: ignore[assignment]
    validator.item = item
    validator.table = table
    validator.processors = validator.get_ast_processors()
    validator.node_to_validate = ast
    return validator.validate()


# ---- Item(): each attribute sized once --------------------------------------------------------

# moto's item size limit (LimitedSizeDict: between DynamoDB's 400 KB and the 409-410 KB it accepts).
_MAX_ITEM_BYTES = 405000


def _item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    """moto's ``Item.__init__``, sizing each attribute once instead of the whole item once per attribute.

    moto stores the attributes in a LimitedSizeDict, whose every assignment re-sizes all
    the attributes already set: building an item of k attributes sizes k * (k + 1) / 2
    values (66 for a campaign recipient's 11), on every PutItem and every item of a
    BatchWriteItem. Here the running total grows by the new attribute alone; sizes are
    never negative, so it passes the limit at the same attribute as moto's sums do, and
    ItemSizeTooLarge (or an error of DynamoType itself) is raised at the same point. The
    stored item is the same LimitedSizeDict, so later updates check sizes as moto does.
    """
    self.hash_key = hash_key
    self.range_key = range_key
    self.attrs = LimitedSizeDict()
    total = 0
    for key, value in attrs.items():
        attribute = DynamoType(value)
        total += bytesize(key) + attribute.size()
        if total > _MAX_ITEM_BYTES:
            raise ItemSizeTooLarge
        dict.__setitem__(self.attrs, key, attribute)


# ---- update expressions: parsed once per expression -------------------------------------------

_original_update_parse = UpdateExpressionParser.make.__func__


@functools.lru_cache(maxsize=1024)
def _pickled_update_expression(cls: type, expression: str) -> bytes:
    # An expression that does not parse raises here, every time: lru_cache keeps answers only.
    return pickle.dumps(_original_update_parse(cls, expression), protocol=pickle.HIGHEST_PROTOCOL)


def _make_update_expression(cls: type, expression_str: str) -> Any:
    """moto's ``UpdateExpressionParser.make``: the same tree, a fresh copy of it per call, the
    expression parsed only the first time it is seen.

    moto parses an UpdateItem's expression twice (the request's used names and values, then
    the update) and deep-copies the tree to validate it: about 150-180 microseconds each
    here. An application sends the same few expressions again and again (values vary, the
    expression does not); a copy of a parsed tree from its pickle takes about 30."""
    return pickle.loads(_pickled_update_expression(cls, expression_str))  # noqa: S301 - our own bytes


# ---- expressions: moto's traversals without their repeated work -------------------------------


def _dispatch(self: DepthFirstTraverser) -> tuple[tuple[type, ...], tuple[tuple[type, Any], ...]]:
    """A traverser's node types and processors, built once per traverser (moto rebuilds
    the map, bound methods and all, for every node of every traversal)."""
    cached: tuple[tuple[type, ...], tuple[tuple[type, Any], ...]] | None = self.__dict__.get("_dispatch")
    if cached is None:
        cached = (tuple(self._processing_map()), tuple(self._processing_map().items()))
        self.__dict__["_dispatch"] = cached
    return cached


def _nodes_to_be_processed(self: DepthFirstTraverser) -> tuple[type, ...]:
    """moto's ``DepthFirstTraverser.nodes_to_be_processed``: the same types, built once."""
    return _dispatch(self)[0]


def _process(self: DepthFirstTraverser, node: Node) -> Any:
    """moto's ``DepthFirstTraverser.process``: the first processor whose type matches, as moto's."""
    for node_type, processor in _dispatch(self)[1]:
        if isinstance(node, node_type):
            return processor(node)
    return None


# isinstance() against moto's AST classes (ABCMeta) runs ABCMeta.__instancecheck__, a Python
# call, twice per node per traversal; the answers depend on the node's class only (moto
# registers no virtual subclasses), so each is worked out once per class.
_NODE_CLASSES: dict[type, bool] = {}


def _is_node(cls: type) -> bool:
    answer = _NODE_CLASSES.get(cls)
    if answer is None:
        answer = _NODE_CLASSES[cls] = issubclass(cls, Node)
    return answer


_HANDLED: dict[tuple[type, type], bool] = {}


def _handles(self: DepthFirstTraverser, cls: type) -> bool:
    """``isinstance(node, self.nodes_to_be_processed())`` for a node of class ``cls``.

    Answered once per traverser class, not per traverser: a validation makes new traversers
    every time, and each of moto's ``_processing_map`` has constant classes for its keys."""
    key = (type(self), cls)
    answer = _HANDLED.get(key)
    if answer is None:
        answer = _HANDLED[key] = issubclass(cls, self.nodes_to_be_processed())
    return answer


def _traverse_node_recursively(self: DepthFirstTraverser, node: Any, child_id: int = -1) -> Any:
    """moto's ``DepthFirstTraverser.traverse_node_recursively``, the same walk and processing,
    with its two type checks answered once per class."""
    if _is_node(type(node)):
        parent_node = node.parent
        if node.children is not None:
            for i, child_node in enumerate(node.children):
                self.pre_processing_of_child(node, i)
                self.traverse_node_recursively(child_node, i)
        if _handles(self, type(node)):
            node = self.process(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
    return node


def _count_actions_once(self: ActionCountValidator, node: Node) -> Node:
    """moto's ``ActionCountValidator.traverse``: the counts checked at the root only.

    moto checks the clause counts at every nested UpdateExpression node, each time walking
    the whole subtree (quadratic in the number of actions); the root's walk sees every
    clause, so checking it alone raises exactly the same errors."""
    if isinstance(node, UpdateExpression):
        self.verify_action_counts(node)
    return node


# ---- answers: DynamoDB items serialized without a search per absent member ---------------------

_original_serialize_structure = BaseJSONSerializer._serialize_type_structure


def _serialize_structure(
    self: BaseJSONSerializer, serialized: Any, value: Any, shape: StructureShape, key: str
) -> None:
    """moto's JSON ``_serialize_type_structure``, with a short path for DynamoDB's
    ``AttributeValue`` when moto hands it over in wire form (a dict such as ``{"S": "x"}``).

    moto's serializer looks every member of a structure up in the value through its alias
    providers (about five candidate names per member, each tried on the value): an
    ``AttributeValue`` has ten members and an item one per attribute, so a 20-item Query
    answer made hundreds of thousands of lookups, most of the request. For a dict
    whose keys are all member names, every alias lookup but the member's own name misses
    (the aliases are shape names, snake_case and prefix forms, none of them an
    ``AttributeValue`` member name), so the value of each member is ``value.get(member)``:
    the short path serializes the members present, in the shape's order, each with moto's
    own serializer for its type (a binary is base64-encoded by moto as before; ``M`` and
    ``L`` come back here for their values), a string member's ``str`` (``S``, ``N``) written
    as moto's string serializer writes it. Any other value takes moto's path.
    """
    if shape.name == "AttributeValue" and type(value) is dict and value.keys() <= shape.members.keys():
        wrapper: Any = self.MAP_TYPE() if key else serialized
        members = shape.members
        for member_key in value if len(value) == 1 else [k for k in members if k in value]:
            member_value = value[member_key]
            if member_value is not None:
                member_shape = members[member_key]
                if type(member_value) is str and member_shape.type_name == "string":
                    # moto's string serializer writes a str as it is, under its serialized name
                    wrapper[member_shape.serialization.get("name", member_key)] = member_value
                    continue
                member_shape.parent = shape  # type: ignore[attr-defined] # as moto's loop does
                self._serialize(wrapper, member_value, member_shape, member_key)
        if key:
            self._default_serialize(serialized, wrapper, shape, key)
        return
    _original_serialize_structure(self, serialized, value, shape, key)


_original_serialize_map = BaseJSONSerializer._serialize_type_map
# AttributeValue members whose value is a string, written as it is by moto's string serializer.
_STRING_MEMBERS = frozenset({"S", "N"})


def _serialize_map(self: BaseJSONSerializer, serialized: Any, value: Any, shape: MapShape, key: str) -> None:
    """moto's JSON ``_serialize_type_map``, with an item's string and number attributes
    (``{"S": "x"}``, ``{"N": "1"}``) written as the path above would write them.

    An item is a map of ``AttributeValue``; for each attribute moto looks its serializer up
    by name, records its path, builds a wrapper and serializes the one member through the
    string serializer, which writes the ``str`` as it is. Where neither the value shape nor
    the member renames itself on the wire, that is ``{member: value}`` under the attribute's
    name; every other attribute (binaries, sets, lists, maps, null, booleans) and every
    other map take moto's path."""
    value_shape = shape.value
    if (
        not isinstance(value_shape, StructureShape)
        or value_shape.name != "AttributeValue"
        or type(value) is not dict
        or "name" in value_shape.serialization
    ):
        _original_serialize_map(self, serialized, value, shape, key)
        return
    map_obj: Any = self.MAP_TYPE()
    self._default_serialize(serialized, map_obj, shape, key)
    members = value_shape.members
    for sub_key, sub_value in value.items():
        if type(sub_value) is dict and len(sub_value) == 1:
            [(member, member_value)] = sub_value.items()
            if (
                member in _STRING_MEMBERS
                and type(member_value) is str
                and "name" not in members[member].serialization
            ):
                map_obj[sub_key] = {member: member_value}
                continue
        self._serialize(map_obj, sub_value, value_shape, sub_key)


_original_serialize_list = BaseJSONSerializer._serialize_type_list
# The AttributeValue members that moto's JSON serializer writes as they are, by the type of
# their value: strings (S, N) through its string serializer, booleans (BOOL, NULL) through its
# default one, string sets (SS, NS) as lists of strings; maps (M) and lists (L) of such values
# are walked.
_AS_IS_MEMBER_TYPES = {
    "S": "string",
    "N": "string",
    "BOOL": "boolean",
    "NULL": "boolean",
    "SS": "list",
    "NS": "list",
    "M": "map",
    "L": "list",
}
_STRING_SETS = frozenset({"SS", "NS"})


@functools.cache
def _lists_items(shape: ListShape) -> bool:
    """Whether ``shape`` is a list of DynamoDB items (``AttributeMap``) whose shapes rename
    nothing on the wire: a ``Query``'s, a ``Scan``'s or a ``BatchGetItem``'s ``Items``."""
    item = shape.member
    if not isinstance(item, MapShape) or not isinstance(item.value, StructureShape):
        return False
    value = item.value
    members = value.members
    if value.name != "AttributeValue" or any(
        members.get(name) is None or members[name].type_name != type_name
        for name, type_name in _AS_IS_MEMBER_TYPES.items()
    ):
        return False
    sets = [cast("ListShape", members[name]).member for name in _STRING_SETS]
    nested_map, nested_list = cast("MapShape", members["M"]), cast("ListShape", members["L"])
    written = [item, value, *(members[name] for name in _AS_IS_MEMBER_TYPES), *sets]
    return (
        all(element.type_name == "string" for element in sets)
        and nested_map.value.name == "AttributeValue"
        and nested_list.member.name == "AttributeValue"
        and not any("name" in written_shape.serialization for written_shape in written)
    )


def _written_as_is(values: Iterable[Any]) -> bool:
    """Whether moto's JSON serializer writes each of these AttributeValues (wire form, such as
    ``{"S": "x"}``) as an equal value: one member, a ``str`` for ``S`` or ``N``, a ``bool``
    for ``BOOL`` or ``NULL``, a list of ``str`` for ``SS`` or ``NS``, a map or a list of such
    values for ``M`` or ``L``. Binaries (base64-encoded by moto) and anything else: False."""
    for value in values:
        if type(value) is not dict or len(value) != 1:
            return False
        for member, content in value.items():
            kind = type(content)
            if kind is str:
                if member != "S" and member != "N":
                    return False
            elif kind is bool:
                if member != "BOOL" and member != "NULL":
                    return False
            elif kind is dict:
                if member != "M" or not _written_as_is(content.values()):
                    return False
            elif kind is list:
                if member == "L":
                    if not _written_as_is(content):
                        return False
                elif member not in _STRING_SETS or not all(type(text) is str for text in content):
                    return False
            else:
                return False
    return True


def _serialize_list(
    self: BaseJSONSerializer, serialized: Any, value: Any, shape: ListShape, key: str
) -> None:
    """moto's JSON ``_serialize_type_list``, with a short path for the items of a ``Query``,
    ``Scan`` or ``BatchGetItem`` answer whose values are all written as they are.

    moto serializes each item of the list through its map serializer, which serializes each
    attribute through its structure serializer and each member through its own (a string's
    serializer writes the ``str`` as it is, a boolean's the ``bool``, a string set's a list
    of the same strings): about ten calls per attribute, a tenth of a 20-message Query's
    server time even with the patches above. For an item that is an exact ``dict`` of
    AttributeValues in wire form whose values are strings, numbers, booleans, nulls, string
    or number sets, and maps and lists of those (``_written_as_is``), what moto writes is an
    equal dict: the same attribute names in the same order, each ``{member: value}`` with
    the same member and an equal value (the shapes rename nothing: ``_lists_items``). The
    serialized answer goes to ``json.dumps`` only, so that item is handed over as it is (as
    moto itself hands over a list's item that its serializer writes nothing for): the same
    JSON text. Other items (a binary anywhere in them, a value that is not a plain ``str``,
    ``bool``, ``list`` or ``dict``) and every other list take moto's path, item by item.
    """
    if not _lists_items(shape):
        _original_serialize_list(self, serialized, value, shape, key)
        return
    item_shape = cast("Shape", shape.member)
    item_key = item_shape.name
    list_obj = []
    for list_item in value:
        if type(list_item) is dict and _written_as_is(list_item.values()):
            list_obj.append(list_item)
            continue
        # moto's loop body
        wrapper: dict[str, Any] = {}
        self._serialize(wrapper, list_item, item_shape, item_key)
        if item_key in wrapper:
            list_obj.append(wrapper[item_key])
        else:
            list_obj.append(list_item)
    self._default_serialize(serialized, list_obj, shape, key)


# ---- DynamoDB answers: plain JSON values walked without model checks ----------------------------

_original_dynamo_to_dict = moto_dynamodb_utilities.dynamo_to_dict
# Values ``dynamo_to_dict`` returns as they are (none is a datetime, a DynamoType or has
# ``to_json``); their subclasses (Enum members, bool is int's) take moto's path.
_PLAIN_JSON = (str, int, float, bool, type(None))
# The values moto's ``dynamo_to_dict`` decodes from base64 (its own branch for them).
_BINARY_TYPES = frozenset({"B", "BS"})


def _dynamo_to_dict(obj: Any) -> Any:
    """moto's ``dynamo_to_dict``, with plain dicts, lists, strings and numbers walked at once.

    Every DynamoDB answer goes through it (``DynamoResult``): for each value, however plain,
    moto imports ``DynamoType`` again, asks ``isinstance`` twice and ``hasattr(to_json)``
    before it returns the value or walks the container; a 20-item Query answer is about
    four hundred values. Exact ``dict``, ``list`` and plain JSON leaves now take the
    branch moto's checks lead them to (an item's ``LimitedSizeDict`` of attributes, a ``dict``
    without ``to_json``, too), and so does a ``DynamoType`` that is not a binary
    (``{type: value}``, the value walked); anything else (binaries, datetime, a model with
    ``to_json``, subclasses) takes moto's path, whose own recursion comes back here."""
    kind = type(obj)
    if kind is DynamoType and obj.type not in _BINARY_TYPES:
        return {obj.type: _dynamo_to_dict(obj.value)}
    if kind is dict or kind is LimitedSizeDict:  # an item's attributes are a LimitedSizeDict
        return {key: _dynamo_to_dict(value) for key, value in obj.items()}
    if kind is list:
        return [_dynamo_to_dict(value) for value in obj]
    if kind in _PLAIN_JSON:
        return obj
    return _original_dynamo_to_dict(obj)


# ---- Query: one partition, not the whole table -------------------------------------------------

_original_table_query = Table.query


def _query_partition(
    self: Table,
    hash_key: DynamoType | None,
    range_comparison: str | None,
    range_objs: list[DynamoType],
    limit: int,
    exclusive_start_key: dict[str, Any],
    scan_index_forward: bool,
    projection_expressions: list[list[str]] | None,
    index_name: str | None = None,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """moto's ``Table.query``, shown only the items of the queried partition that its walk
    can reach, when no index is named.

    Without an index, moto lists and sorts every item of the table (``all_items()``), keeps
    those whose hash key is the queried one, sorts them again, then walks them in the
    query's order from the first one past ``ExclusiveStartKey``, sizing each, until the
    page holds ``Limit`` items: a page of 20 messages costs as much as the table is big,
    then as much as the chat's history is long. The items of one hash key are
    ``self.items[hash_key]``. Sorted once on their range keys' plain values (one type per
    key attribute, so the order ``DynamoType.__lt__`` gives), the items a key condition
    matches are one run of that order, found by bisection (``_page_window``). moto's
    query then runs unchanged on a shallow copy of the table whose ``all_items()`` is that
    run cut to the page and the one item after it (which tells moto whether to answer a
    ``LastEvaluatedKey``): it keeps, sorts, pages, filters and projects what it would have.
    Index queries, legacy ``QueryFilter`` conditions and key values of another type than
    the stored keys' take moto's own walk of the partition.
    """
    table = self
    if index_name is None and hash_key is not None:
        partition = self.items.get(hash_key)
        table = copy.copy(self)
        table.items = {hash_key: partition} if partition is not None else {}  # type: ignore[assignment]
        if self.range_key_attr and partition:
            pairs = sorted(((item.range_key.cast_value, item) for item in partition.values()), key=_first)
            ordered = [item for _, item in pairs]
            window = None
            if not _legacy_filters(kwargs):
                keys = [value for value, _ in pairs]
                condition = (range_comparison, range_objs)
                window = _page_window(
                    self, keys, ordered, condition, limit, exclusive_start_key, scan_index_forward
                )
            reachable = ordered if window is None else window
            table.all_items = lambda: reachable  # type: ignore[method-assign]
    return _original_table_query(
        table,
        hash_key,
        range_comparison,
        range_objs,
        limit,
        exclusive_start_key,
        scan_index_forward,
        projection_expressions,
        index_name,
        *args,
        **kwargs,
    )


def _first(pair: tuple[Any, Item]) -> Any:
    return pair[0]


# Keyword arguments of ``Table.query`` that are not legacy ``QueryFilter`` conditions.
_QUERY_KEYWORDS = frozenset(
    {"consistent_read", "filter_expression", "hash_key_conditions", "range_key_conditions"}
)


def _legacy_filters(kwargs: dict[str, Any]) -> bool:
    """Whether moto was given ``QueryFilter`` conditions (its ``**filter_kwargs``): with them,
    moto counts the page's items after filtering, so the page cannot be cut beforehand."""
    return any(name not in _QUERY_KEYWORDS for name in kwargs)


def _key_bounds(keys: list[Any], comparison: str | None, values: list[Any]) -> tuple[int, int] | None:
    """The run ``keys[low:high]`` (sorted plain values) that a key condition matches, as
    moto's comparison functions decide it; None for a condition not handled here."""
    if comparison is None:
        return 0, len(keys)
    if comparison == "BETWEEN" and len(values) == 2:
        low = bisect.bisect_left(keys, values[0])
        return low, max(low, bisect.bisect_right(keys, values[1]))
    if len(values) != 1:
        return None
    value = values[0]
    if comparison in ("=", "EQ"):
        return bisect.bisect_left(keys, value), bisect.bisect_right(keys, value)
    if comparison in ("<", "LT"):
        return 0, bisect.bisect_left(keys, value)
    if comparison in ("<=", "LE"):
        return 0, bisect.bisect_right(keys, value)
    if comparison in (">", "GT"):
        return bisect.bisect_right(keys, value), len(keys)
    if comparison in (">=", "GE"):
        return bisect.bisect_left(keys, value), len(keys)
    if comparison == "BEGINS_WITH" and type(value) is str and all(type(key) is str for key in keys):
        # The strings that start with a prefix come together, right from the prefix on.
        low = bisect.bisect_left(keys, value)
        return low, bisect.bisect_left(keys, True, lo=low, key=lambda key: not key.startswith(value))
    return None


def _page_window(
    table: Table,
    keys: list[Any],
    ordered: list[Item],
    condition: tuple[str | None, list[DynamoType]],
    limit: int | None,
    exclusive_start_key: dict[str, Any] | None,
    forward: bool,
) -> list[Item] | None:
    """The items of ``ordered`` (one partition, ascending; ``keys`` their range keys' plain
    values) that moto's walk of the query can reach: those the key condition matches past
    the start key, as many as ``limit``, then the next item in the walk's direction, the
    one that makes moto answer a ``LastEvaluatedKey``. None when moto must walk them all.

    moto also sizes the items its walk passes that the key condition does not match: after
    a page short of ``Limit``, one of them could end the page at 1 MB. DynamoDB's 1 MB
    counts only the items it reads, those the key condition matches; so does this window."""
    comparison, objects = condition
    first_key, range_attr = ordered[0].range_key, table.range_key_attr
    if first_key is None or range_attr is None:
        return None
    key_type = first_key.type
    if any(obj.type != key_type for obj in objects) or (limit is not None and limit < 1):
        return None
    bounds = _key_bounds(keys, comparison, [obj.cast_value for obj in objects])
    if bounds is None:
        return None
    low, high = bounds
    start_index: int | None = None
    if exclusive_start_key is not None:
        hash_value = exclusive_start_key.get(table.hash_key_attr)
        range_value = exclusive_start_key.get(range_attr)
        if not isinstance(hash_value, dict) or not isinstance(range_value, dict):
            return None
        start_hash, start_range = DynamoType(hash_value), DynamoType(range_value)
        if start_hash != ordered[0].hash_key or start_range.type != key_type:
            return None
        # moto skips the items at or before the start key in the walk's direction.
        find = bisect.bisect_right if forward else bisect.bisect_left
        start_index = find(keys, start_range.cast_value)
    if forward:
        begin = low if start_index is None else max(low, start_index)
        end = high if limit is None else min(high, begin + limit)
        return ordered[begin : max(end, begin) + 1]
    top = high if start_index is None else min(high, start_index)
    stop = min(top, low if limit is None else max(low, top - limit))
    return ordered[max(stop - 1, 0) : top]


# ---- DynamoType: plain values without type questions -------------------------------------------

_original_cast_value = DynamoType.cast_value
_original_size = DynamoType.size
# The types whose ``cast_value`` is their stored value (moto's last branch).
_PLAIN_TYPES = frozenset({"S", "B", "BOOL"})
_SET_TYPES = frozenset({"SS", "NS", "BS"})


def _cast_value(self: DynamoType) -> Any:
    """moto's ``DynamoType.cast_value`` without five type tests for a string.

    Every comparison of two attribute values (key lookups, sorting, conditions) calls it
    twice; moto asks ``is_number``, ``is_set``, ``is_list``, ``is_map`` and ``is_null`` in
    turn before returning a string's value as it is. Strings, binaries and booleans take
    that last branch, so they return at once; every other type takes moto's path."""
    if self.type in _PLAIN_TYPES:
        return self.value
    return _original_cast_value.fget(self)  # type: ignore[attr-defined]


def _plain_size(kind: str, content: Any) -> int | None:
    """A string's or a number's size as moto's ``DynamoType.size`` counts it (``bytesize``,
    ``len(str(value))``); None for other types."""
    if kind == "S":
        return _bytesize(content)
    if kind == "N":
        return len(str(content))
    return None


def _size(self: DynamoType) -> int:
    """moto's ``DynamoType.size``, a string's and a number's without the type questions
    (moto's ``bytesize`` and ``len(str(value))`` branches), a map's without copying it;
    other types take moto's path.

    moto sizes each value of a map as ``DynamoType(value).size()``: a copy of the value, which
    for a map copies its values in turn, level by level (a third of a 20-message Query's
    sizing went to the chat's item and its two levels of maps). The copy has the type and the
    value of what it copies, so the same size: a map whose values are all ``DynamoType``
    objects is sized as the sum of its names' ``bytesize`` and its values' sizes; any other
    value in it takes moto's path for the whole map."""
    kind, content = self.type, self.value
    size = _plain_size(kind, content)
    if size is not None:
        return size
    if kind == "M" and type(content) is dict:
        total = 0
        for name, child in content.items():
            if type(child) is not DynamoType:
                return int(_original_size(self))
            total += _bytesize(name) + child.size()
        return total
    return int(_original_size(self))


def _bytesize(value: str | bytes) -> int:
    """moto's ``bytesize``: a str's UTF-8 length (an ASCII string's is its length, counted
    without an encoded copy), a bytes' length."""
    if isinstance(value, bytes):
        return len(value)
    return len(value) if value.isascii() else len(value.encode("utf-8"))


def _item_size(self: Item) -> int:
    """moto's ``Item.size`` (each attribute's name and value, as ``bytesize`` and
    ``DynamoType.size`` count them) in one loop, a string's and a number's sized in place.

    moto sizes every item a query or scan walks and again every item it answers, to stop
    at 1 MB: each attribute through a generator, ``bytesize`` (an ``isinstance`` and an
    encoded copy) and a ``size()`` call; half of a 20-message page's query was sizing.
    Names and strings are counted as ``_bytesize`` counts them (an ASCII ``str`` or
    ``bytes`` by its length), inline: a function call less per attribute. Other types take
    moto's path."""
    total = 0
    for name, value in self.attrs.items():
        total += len(name) if name.isascii() else _bytesize(name)
        kind = value.type
        if kind == "S":
            text = value.value
            total += len(text) if text.isascii() else _bytesize(text)
        elif kind == "N":
            total += len(str(value.value))
        else:
            total += value.size()
    return total


def _copied(value: DynamoType) -> DynamoType:
    """moto's ``DynamoType.__deepcopy__`` (type and value; lists and maps copied through,
    sets as new lists) without ``copy.deepcopy``'s dispatch and memo per value: DynamoDB
    values are trees, so no value is met twice. A string's or a number's value (moto's last
    branch: the same ``str``) is kept without asking the other three questions."""
    kind = value.type
    content = value.value
    if kind != "S" and kind != "N":
        if kind == "L":
            content = [_copied(child) for child in content]
        elif kind == "M":
            content = {key: _copied(child) for key, child in content.items()}
        elif kind in _SET_TYPES:
            content = list(content)
    result: DynamoType = DynamoType.__new__(DynamoType)
    result.type = kind
    result.value = content
    return result


def _value_deepcopy(self: DynamoType, memo: dict[int, Any]) -> DynamoType:
    return _copied(self)


def _item_deepcopy(self: Item, memo: dict[int, Any]) -> Item:
    """moto's ``Item.__deepcopy__`` (keys and attributes copied, the attribute dict built
    without re-sizing) with each value copied by ``_copied``. Every query deep-copies the
    items it answers."""
    result = cast("Item", Item.__new__(Item))
    result.hash_key = _copied(self.hash_key)
    result.range_key = _copied(self.range_key) if self.range_key is not None else None
    attrs = LimitedSizeDict.__new__(LimitedSizeDict)
    # dict's own __init__ copies the pairs in without LimitedSizeDict.__setitem__ (no sizing)
    dict.__init__(attrs, {key: _copied(value) for key, value in self.attrs.items()})
    result.attrs = attrs
    return result


# ---- moto's request dispatch: a response class's method names -----------------------------------


@functools.cache
def _method_names_from_class(clazz: object) -> list[str]:
    """moto's ``method_names_from_class``, computed once per class.

    moto lists a response class's functions (``inspect.getmembers``, every attribute of the
    class and its bases) on every request, to see whether the action is one of them. A
    class's functions do not change while moto serves (the patches here replace existing
    methods, never add or remove one), so the list is the same every time.
    """
    return list(_original_method_names_from_class(clazz))


_original_method_names_from_class = moto_core_responses.method_names_from_class  # type: ignore[attr-defined]


# ---- moto's server: its list of services -------------------------------------------------------

_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())


def _moto_modules() -> Iterable[str]:
    """moto's ``list_of_moto_modules``: its server lists its package directory on every request
    to route it (about 200 directories: a millisecond per request); the list never changes
    while we run."""
    return _MOTO_MODULES


# ---- SQS: one clock read, one pass over the queue ----------------------------------------------


def _now_ms() -> float:
    """moto's unix_time_millis() (the same clock), without building two datetimes per call."""
    return time.time() * 1000


def _visible(self: Message) -> bool:
    """moto's ``Message.visible``."""
    return bool(_now_ms() > self.visible_at)


def _delayed(self: Message) -> bool:
    """moto's ``Message.delayed``."""
    return bool(_now_ms() < self.delayed_until)


def _queue_messages(self: Queue) -> list[Message]:
    """moto's ``Queue.messages``: the visible, not delayed messages, with one clock read."""
    now = _now_ms()
    return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]


def _queue_counts(self: Queue) -> tuple[int, int, int]:
    """(visible, delayed, not visible) in one pass over the queue, with one clock read."""
    now = _now_ms()
    visible = delayed = hidden = 0
    for m in self._messages:
        is_visible, is_delayed = now > m.visible_at, now < m.delayed_until
        visible += is_visible and not is_delayed
        delayed += is_delayed
        hidden += not is_visible
    return visible, delayed, hidden


_COUNT_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesDelayed",
    "ApproximateNumberOfMessagesNotVisible",
)


# Set while moto sends a message: it builds the queue's attributes then only to read its
# content-based deduplication flag, so the counts (a pass over the queue) are left out.
# A context variable: each thread (and each task) has its own, so this is thread-safe.
_sending: contextvars.ContextVar[bool] = contextvars.ContextVar("moto_sqs_sending", default=False)


def _sending_message(send_message: Callable[..., Message]) -> Callable[..., Message]:
    @functools.wraps(send_message)
    def send(self: SQSBackend, *args: Any, **kwargs: Any) -> Message:
        token = _sending.set(True)
        try:
            return send_message(self, *args, **kwargs)
        finally:
            _sending.reset(token)

    return send


_underscored = functools.cache(camelcase_to_underscores)  # a dozen attribute names, every send


def _queue_attributes(self: Queue) -> dict[str, Any]:
    """moto's ``Queue.attributes``, with the three message counts from one pass instead of
    three, and none at all while a message is being sent (see ``_sending``)."""
    counted = (0, 0, 0) if _sending.get() else _queue_counts(self)
    counts = dict(zip(_COUNT_ATTRIBUTES, counted, strict=True))
    names = list(self.BASE_ATTRIBUTES)
    if self.fifo_queue:
        names += self.FIFO_ATTRIBUTES
    if self.kms_master_key_id:  # type: ignore[attr-defined]
        names += self.KMS_ATTRIBUTES
    result: dict[str, Any] = {
        name: counts[name] if name in counts else getattr(self, _underscored(name)) for name in names
    }
    if self.policy:
        result["Policy"] = self.policy
    if self.redrive_policy:
        result["RedrivePolicy"] = json.dumps(self.redrive_policy)
    return {key: str(value).lower() if isinstance(value, bool) else value for key, value in result.items()}


def _retained(self: SQSBackend, queue_name: str, message: Message) -> bool:
    """moto's ``SQSBackend.is_message_valid_based_on_retention_period``: it computes every
    attribute of the queue (a pass over all its messages) to read the retention period,
    once per message received."""
    queue = self.get_queue(queue_name)
    retention = int(queue.message_retention_period)  # type: ignore[attr-defined]
    return bool(retention + (message.sent_timestamp or 0) / 1000 > time.time())


# ---- EventBridge ----------------------------------------------------------------------------


@functools.cache
def _json_path(path: str) -> Any:
    """A target's input path, parsed once: jsonpath_ng builds its whole LR parser (tables
    read, grammar reflected) for every ``parse``, and moto parses eight paths per target
    per event."""
    from jsonpath_ng.ext.parser import parse  # what moto calls (as jsonpath_ng.ext.parse)

    return parse(path)


def _event_template(
    input_template: str, input_paths_map: dict[str, Any], event: EventMessageType
) -> dict[str, Any]:
    """``EventTemplateParser.parse`` with each path parsed once (``_json_path``); otherwise
    moto's steps, in moto's order."""
    template = input_template or EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE
    paths = input_paths_map or EventTemplateParser.DEFAULT_EVENT_INPUT_PATHS_MAP
    for name, path in paths.items():
        matches = _json_path(path).find(event)
        result = EventTemplateParser._stringify(matches[0].value) if matches else None
        if result:
            template = template.replace(f"<{name}>", result)
    defaults = {"aws.events.event.json": event, "aws.events.event.ingestion-time": event["ingestion-time"]}
    for name, value in defaults.items():
        template = template.replace(f"<{name}>", EventTemplateParser._stringify(value))
    return cast("dict[str, Any]", json.loads(template))


# ---- the patches, and applying them ------------------------------------------------------------


def _replace(value: Any) -> Callable[[Any], Any]:
    return lambda _original: value


@dataclass(frozen=True)
class Patch:
    """One patch: attributes of moto replaced together. ``build`` makes the new attribute
    from the current one (a wrapper needs it; a replacement ignores it)."""

    name: str
    kind: str  # "atomicity" | "speed-up" | "fidelity"
    replacements: tuple[tuple[Any, str, Callable[[Any], Any]], ...]


# The item operations of the backend, locked for callers that use the backend directly.
_ITEM_OPERATIONS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)

# In the order they are applied; removed in the reverse order. ``dynamodb.locks`` comes last
# so that it wraps whatever the others installed.
PATCHES: tuple[Patch, ...] = (
    Patch(
        "dynamodb.transact_write_items",
        "speed-up",
        ((DynamoDBBackend, "transact_write_items", _replace(_transact_write_items)),),
    ),
    Patch("dynamodb.update_item", "fidelity", ((DynamoDBBackend, "update_item", _replace(_update_item)),)),
    Patch("dynamodb.item_init", "speed-up", ((Item, "__init__", _replace(_item_init)),)),
    Patch(
        "dynamodb.update_expressions",
        "speed-up",
        ((UpdateExpressionParser, "make", _replace(classmethod(_make_update_expression))),),
    ),
    Patch(
        "dynamodb.expression_traversal",
        "speed-up",
        (
            (DepthFirstTraverser, "nodes_to_be_processed", _replace(_nodes_to_be_processed)),
            (DepthFirstTraverser, "process", _replace(_process)),
            (DepthFirstTraverser, "traverse_node_recursively", _replace(_traverse_node_recursively)),
            (ActionCountValidator, "traverse", _replace(_count_actions_once)),
        ),
    ),
    Patch(
        "core.json_attribute_values",
        "speed-up",
        (
            (BaseJSONSerializer, "_serialize_type_structure", _replace(_serialize_structure)),
            (BaseJSONSerializer, "_serialize_type_map", _replace(_serialize_map)),
        ),
    ),
    Patch(
        "core.json_item_lists",
        "speed-up",
        ((BaseJSONSerializer, "_serialize_type_list", _replace(_serialize_list)),),
    ),
    Patch("dynamodb.query_partition", "speed-up", ((Table, "query", _replace(_query_partition)),)),
    Patch(
        "dynamodb.answers_to_dict",
        "speed-up",
        (
            (moto_dynamodb_utilities, "dynamo_to_dict", _replace(_dynamo_to_dict)),
            (moto_dynamodb_responses, "dynamo_to_dict", _replace(_dynamo_to_dict)),
        ),
    ),
    Patch(
        "dynamodb.plain_values",
        "speed-up",
        (
            (DynamoType, "cast_value", _replace(property(_cast_value))),
            (DynamoType, "size", _replace(_size)),
            (Item, "size", _replace(_item_size)),
            (DynamoType, "__deepcopy__", _replace(_value_deepcopy)),
            (Item, "__deepcopy__", _replace(_item_deepcopy)),
        ),
    ),
    Patch(
        "core.method_names",
        "speed-up",
        ((moto_core_responses, "method_names_from_class", _replace(_method_names_from_class)),),
    ),
    Patch(
        "core.moto_modules", "speed-up", ((moto_backends, "list_of_moto_modules", _replace(_moto_modules)),)
    ),
    Patch(
        "sqs.message_clock",
        "speed-up",
        (
            (Message, "visible", _replace(property(_visible))),
            (Message, "delayed", _replace(property(_delayed))),
            (Queue, "messages", _replace(property(_queue_messages))),
        ),
    ),
    Patch(
        "sqs.queue_attributes",
        "speed-up",
        (
            (Queue, "attributes", _replace(property(_queue_attributes))),
            (SQSBackend, "send_message", _sending_message),
        ),
    ),
    Patch(
        "sqs.retention",
        "speed-up",
        ((SQSBackend, "is_message_valid_based_on_retention_period", _replace(_retained)),),
    ),
    Patch(
        "events.input_paths",
        "speed-up",
        ((EventTemplateParser, "parse", _replace(staticmethod(_event_template))),),
    ),
    Patch(
        "dynamodb.locks",
        "atomicity",
        (
            (DynamoHandler, "call_action", _locked_dynamodb_requests),
            (DynamoDBStreamsHandler, "call_action", _locked_stream_requests),
            *((DynamoDBBackend, name, _locked_backend_method) for name in _ITEM_OPERATIONS),
        ),
    ),
)
PATCH_NAMES = tuple(patch.name for patch in PATCHES)

_MISSING = object()
_state_lock = threading.Lock()
# The patches applied now, in order, each with the attributes it replaced (as they were).
_applied: list[tuple[Patch, list[tuple[Any, str, Any]]]] = []


def _check(names: Iterable[str]) -> None:
    """Refuse unknown patch names and an untested moto, before anything changes."""
    wanted = set(names)
    unknown = wanted - set(PATCH_NAMES)
    if unknown:
        raise ValueError(f"no such patch: {', '.join(sorted(unknown))} (patches: {', '.join(PATCH_NAMES)})")
    if wanted:
        check_moto_version()


def _apply(names: Iterable[str]) -> None:
    wanted = set(names)
    for patch in PATCHES:
        if patch.name not in wanted:
            continue
        saved: list[tuple[Any, str, Any]] = []
        for owner, attribute, build in patch.replacements:
            saved.append((owner, attribute, vars(owner).get(attribute, _MISSING)))
            setattr(owner, attribute, build(getattr(owner, attribute)))
        _applied.append((patch, saved))


def _remove_all() -> None:
    while _applied:
        _, saved = _applied.pop()
        for owner, attribute, original in reversed(saved):
            if original is _MISSING:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)


def applied_names() -> tuple[str, ...]:
    """The names of the patches applied now, in the order they were applied."""
    with _state_lock:
        return tuple(patch.name for patch, _ in _applied)


def install() -> None:
    """Apply every patch (idempotent); ``UntestedMotoVersion`` if moto is not a tested version."""
    _check(PATCH_NAMES)  # before anything changes: a refused install leaves moto as it was
    with _state_lock:
        if tuple(patch.name for patch, _ in _applied) == PATCH_NAMES:
            return
        _remove_all()
        _apply(PATCH_NAMES)


def uninstall() -> None:
    """Give moto back its own methods."""
    with _state_lock:
        _remove_all()


@contextmanager
def applied(*names: str) -> Iterator[None]:
    """Only the named patches (none: moto as it is) for the duration; then as before.

    For tests, on one thread: the patches are process-wide."""
    _check(names)
    with _state_lock:
        before = [patch.name for patch, _ in _applied]
        _remove_all()
        _apply(names)
    try:
        yield
    finally:
        with _state_lock:
            _remove_all()
            _apply(before)
