"""Frames to WebSocket connections through API Gateway's management API (``@connections``).

Posts run on a small thread pool: a message to a group of 200 members with a phone and
a laptop each is 400 posts, which one after the other would take seconds. A
``GoneException`` (410) means the client is gone: the id is returned so that the caller
removes exactly that connection. Other errors are raised: the stream record is retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING, Any

from chatflow.adapters import aws
from chatflow.adapters.aws_errors import GONE, connections_errors

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi.client import ApiGatewayManagementApiClient

POST_CONCURRENCY = 16


def management_url(websocket_endpoint: str) -> str:
    """The ``@connections`` base URL of a stage, from its WebSocket URL (``wss://…/stage``)."""
    if websocket_endpoint.startswith("wss://"):
        return "https://" + websocket_endpoint[len("wss://") :]
    if websocket_endpoint.startswith("ws://"):
        return "http://" + websocket_endpoint[len("ws://") :]
    return websocket_endpoint


def management_client(region: str, websocket_endpoint: str) -> ApiGatewayManagementApiClient:
    return aws.connections_api(region, management_url(websocket_endpoint))


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=POST_CONCURRENCY, thread_name_prefix="post")


def encode(frame: Mapping[str, Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class ApiGatewayNotifier:
    def __init__(self, client: ApiGatewayManagementApiClient) -> None:
        self._client = client

    def post(self, frames: Sequence[tuple[str, Mapping[str, Any]]]) -> set[str]:
        if not frames:
            return set()
        if len(frames) == 1:
            connection_id, frame = frames[0]
            return {connection_id} if self._post_one(connection_id, encode(frame)) else set()
        results = _pool().map(lambda pair: (pair[0], self._post_one(pair[0], encode(pair[1]))), frames)
        return {connection_id for connection_id, gone in results if gone}

    def disconnect(self, connection_id: str) -> None:
        with connections_errors(expect=GONE):  # already closed
            self._client.delete_connection(ConnectionId=connection_id)

    def _post_one(self, connection_id: str, data: bytes) -> bool:
        """True when the connection is gone."""
        with connections_errors(expect=GONE) as call:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        return call.refused is not None
