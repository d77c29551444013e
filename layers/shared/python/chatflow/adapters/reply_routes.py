"""Where a number's SMS replies go, in the connections table (beside the forward budgets).

Item (PK / SK): ``SMSROUTE#<phone>`` / ``SMSROUTE``: ``chatId`` and ``sentAt`` of the last
forward the provider accepted for that number; expires with the table's TTL 24 hours after
``sentAt``. One item per number: recording a forward is one conditional write (only a later
``sentAt`` replaces it), finding where a reply goes is one read.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from chatflow.adapters.aws_errors import CONDITION_FAILED, dynamo_errors
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.sms_replies import ForwardRoute

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

ROUTE_SK = "SMSROUTE"


def _route_key(phone_number: str) -> dict[str, Any]:
    return {"PK": {"S": f"SMSROUTE#{phone_number}"}, "SK": {"S": ROUTE_SK}}


class DynamoReplyRoutes:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    def record(self, route: ForwardRoute, *, expires_at: datetime) -> bool:
        sent_at = to_iso(route.sent_at)  # sortable as text
        with dynamo_errors(expect=CONDITION_FAILED) as call:
            self._client.put_item(
                TableName=self._table,
                Item={
                    **_route_key(route.phone_number),
                    "chatId": {"S": route.chat_id},
                    "sentAt": {"S": sent_at},
                    "ttl": {"N": str(int(expires_at.timestamp()))},
                },
                # The most recent send wins, whatever order the events come in.
                ConditionExpression="attribute_not_exists(PK) OR sentAt < :at",
                ExpressionAttributeValues={":at": {"S": sent_at}},
            )
        return call.error is None

    def latest(self, phone_number: str) -> ForwardRoute | None:
        with dynamo_errors():
            response = self._client.get_item(
                TableName=self._table, Key=_route_key(phone_number), ConsistentRead=True
            )
        item = response.get("Item")
        if item is None:
            return None
        return ForwardRoute(
            phone_number=phone_number, chat_id=item["chatId"]["S"], sent_at=from_iso(item["sentAt"]["S"])
        )
