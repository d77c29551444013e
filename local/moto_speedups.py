"""Speed-ups of moto for the local stack: the same behaviour, without costs that grow with the data.

moto is written for correctness in small tests; the local stack keeps thousands of
messages in a queue and thousands of items in a table, where some of moto's
implementations cost time proportional to everything stored, on every call. Each patch
here keeps moto's observable behaviour (results, errors) and drops that cost. They are
installed by the emulated AWS server, by the in-process stack of the integration tests
(so both behave alike), and by the campaign-loader benchmark (`bench/loader.py`, for
both loaders it compares).
"""

from __future__ import annotations

import contextvars
import functools
import json
import time
from collections.abc import Iterable
from typing import Any

from moto import backends as moto_backends
from moto.core.utils import camelcase_to_underscores
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    ItemSizeTooLarge,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
    # moto's ast_nodes starts with "# type: ignore": mypy sees none of its names (Any here).
    DepthFirstTraverser,
    Node,
    UpdateExpression,
)
from moto.dynamodb.parsing.validators import ActionCountValidator
from moto.sqs.models import Message, Queue, SQSBackend


def _transact_without_copies(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    """moto's TransactWriteItems, without its deep copy of every table it touches.

    moto copies each table to roll back a cancelled transaction, which makes one
    transaction cost as much as the table is big (seconds, with thousands of campaign
    recipients). Requests are served one at a time here, so checking every condition
    first and then applying every write is just as atomic, and a cancelled transaction
    writes nothing (moto's own streams the writes it rolls back, which real DynamoDB never
    does). Errors and cancellation reasons are moto's own.
    """
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    reasons: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
    targets: set[tuple[str, str]] = set()
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException()
        op_type, op = next(iter(item.items()))
        table = self.get_table(op["TableName"])
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        target = (str(op["TableName"]), str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = self.get_item(op["TableName"], key)
        condition = op.get("ConditionExpression")
        if condition is not None:
            check = get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            )
            if not check.expr(current):
                old = (
                    current.to_json()["Attributes"]
                    if current and op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD"
                    else None
                )
                reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
                continue
        reasons.append((None, None, None))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    for item in transact_items:
        op_type, op = next(iter(item.items()))
        common = {
            "condition_expression": op.get("ConditionExpression"),
            "expression_attribute_names": op.get("ExpressionAttributeNames"),
            "expression_attribute_values": op.get("ExpressionAttributeValues"),
        }
        if op_type == "Put":
            self.put_item(op["TableName"], op["Item"], **common)
        elif op_type == "Delete":
            self.delete_item(op["TableName"], op["Key"], **common)
        elif op_type == "Update":
            self.update_item(op["TableName"], op["Key"], update_expression=op["UpdateExpression"], **common)


# moto's item size limit (LimitedSizeDict: between DynamoDB's 400 KB and the 409-410 KB it accepts).
_MAX_ITEM_BYTES = 405000


def _item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    """moto's Item(), sizing each attribute once instead of the whole item once per attribute.

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


_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())


def _moto_modules() -> Iterable[str]:
    """moto's server lists its package directory on every request to route it (about 200
    directories: a millisecond per request); the list never changes while we run."""
    return _MOTO_MODULES


def _now_ms() -> float:
    """moto's unix_time_millis() (the same clock), without building two datetimes per call."""
    return time.time() * 1000


def _visible(self: Message) -> bool:
    return bool(_now_ms() > self.visible_at)


def _delayed(self: Message) -> bool:
    return bool(_now_ms() < self.delayed_until)


def _queue_messages(self: Queue) -> list[Message]:
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
_sending: contextvars.ContextVar[bool] = contextvars.ContextVar("moto_sqs_sending", default=False)
_original_send_message = SQSBackend.send_message


def _send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Message:
    token = _sending.set(True)
    try:
        return _original_send_message(self, *args, **kwargs)
    finally:
        _sending.reset(token)


_underscored = functools.cache(camelcase_to_underscores)  # a dozen attribute names, every send


def _queue_attributes(self: Queue) -> dict[str, Any]:
    """moto's Queue.attributes, with the three message counts from one pass instead of
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
    """moto computes every attribute of the queue (a pass over all its messages) to read
    the retention period, once per message received."""
    queue = self.get_queue(queue_name)
    retention = int(queue.message_retention_period)  # type: ignore[attr-defined]
    return bool(retention + (message.sent_timestamp or 0) / 1000 > time.time())


def _dispatch(self: DepthFirstTraverser) -> tuple[tuple[type, ...], tuple[tuple[type, Any], ...]]:
    """A traverser's node types and processors, built once per traverser (moto rebuilds
    the map, bound methods and all, for every node of every traversal)."""
    cached: tuple[tuple[type, ...], tuple[tuple[type, Any], ...]] | None = self.__dict__.get("_dispatch")
    if cached is None:
        cached = (tuple(self._processing_map()), tuple(self._processing_map().items()))
        self.__dict__["_dispatch"] = cached
    return cached


def _nodes_to_be_processed(self: DepthFirstTraverser) -> tuple[type, ...]:
    return _dispatch(self)[0]


def _process(self: DepthFirstTraverser, node: Node) -> Any:
    for node_type, processor in _dispatch(self)[1]:
        if isinstance(node, node_type):
            return processor(node)
    return None


def _count_actions_once(self: ActionCountValidator, node: Node) -> Node:
    """moto checks the clause counts at every nested UpdateExpression node, each time
    walking the whole subtree (quadratic in the number of actions); the root's walk sees
    every clause, so checking it alone raises exactly the same errors."""
    if isinstance(node, UpdateExpression):
        self.verify_action_counts(node)
    return node


def install() -> None:
    """Apply every speed-up (idempotent)."""
    DynamoDBBackend.transact_write_items = _transact_without_copies  # type: ignore[method-assign]
    Item.__init__ = _item_init  # type: ignore[method-assign]
    moto_backends.list_of_moto_modules = _moto_modules
    Message.visible = property(_visible)  # type: ignore[method-assign,assignment]
    Message.delayed = property(_delayed)  # type: ignore[method-assign,assignment]
    Queue.messages = property(_queue_messages)  # type: ignore[method-assign,assignment]
    Queue.attributes = property(_queue_attributes)  # type: ignore[method-assign,assignment]
    DepthFirstTraverser.nodes_to_be_processed = _nodes_to_be_processed
    DepthFirstTraverser.process = _process
    ActionCountValidator.traverse = _count_actions_once
    SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]
    SQSBackend.send_message = _send_message  # type: ignore[method-assign]
