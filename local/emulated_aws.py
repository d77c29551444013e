"""The environment for talking to emulated AWS: fake credentials, one region, no real account."""

from __future__ import annotations

import os

REGION = "us-east-1"

EMULATED_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    # moto with botocore 1.44+: DynamoDB Streams calls fail unless this is off.
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


def use_emulated_aws(**extra: str) -> None:
    """Set the environment before any boto3 client exists, so nothing reaches a real account."""
    os.environ.update(EMULATED_AWS_ENV | extra)
    os.environ.pop("AWS_ENDPOINT_URL", None)
