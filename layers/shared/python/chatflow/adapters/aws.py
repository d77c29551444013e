"""boto3 clients: made once per execution environment, lazily, on first use."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from chatflow.adapters.aws_errors import secrets_errors
from chatflow.adapters.dynamo_wire import read_items_directly

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi.client import ApiGatewayManagementApiClient
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_secretsmanager.client import SecretsManagerClient
    from mypy_boto3_sqs.client import SQSClient

# Retries with backoff for throttling, and short timeouts: a Lambda must not hang.
_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=32,
)


@cache
def dynamodb(region: str) -> DynamoDBClient:
    client = boto3.client("dynamodb", region_name=region, config=_CONFIG)
    read_items_directly(client)  # items without botocore's per-value walk (dynamo_wire)
    return client


@cache
def secretsmanager(region: str) -> SecretsManagerClient:
    return boto3.client("secretsmanager", region_name=region, config=_CONFIG)


@cache
def sqs(region: str) -> SQSClient:
    return boto3.client("sqs", region_name=region, config=_CONFIG)


@cache
def s3(region: str) -> S3Client:
    # Presigned URLs signed with SigV4 (SigV2 URLs are refused in newer regions).
    return boto3.client("s3", region_name=region, config=_CONFIG.merge(Config(signature_version="s3v4")))


@cache
def connections_api(region: str, endpoint_url: str) -> ApiGatewayManagementApiClient:
    """A WebSocket stage's ``@connections`` API (``endpoint_url`` is https://…/stage)."""
    return boto3.client(
        "apigatewaymanagementapi",
        region_name=region,
        endpoint_url=endpoint_url,
        config=_CONFIG.merge(Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=5)),
    )


def read_secret(region: str, secret_id: str) -> bytes:
    with secrets_errors():
        value = secretsmanager(region).get_secret_value(SecretId=secret_id)
    return value["SecretString"].encode("utf-8")


def read_json_secret(region: str, secret_id: str) -> dict[str, str]:
    """A secret holding a JSON object of strings (such as the SMS provider's credentials)."""
    document = json.loads(read_secret(region, secret_id))
    if not isinstance(document, dict):
        raise ValueError(f"secret {secret_id} must hold a JSON object")
    return {str(k): str(v) for k, v in document.items()}


def reset_clients() -> None:
    """Forget the cached clients (tests that start a fresh AWS mock call this)."""
    dynamodb.cache_clear()
    secretsmanager.cache_clear()
    sqs.cache_clear()
    s3.cache_clear()
    connections_api.cache_clear()
