"""Shared fixtures: fake AWS credentials, and the whole stack from template.yaml on moto."""

from __future__ import annotations

import os

# Before any boto3 client exists: never reach a real account from the tests.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_SERVICE_NAME": "chatflow-tests",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "ChatFlowTests",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
