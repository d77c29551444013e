"""Shared fixtures: fake AWS credentials, and the whole stack from template.yaml on moto."""

from __future__ import annotations

from local.emulated_aws import use_emulated_aws

use_emulated_aws(
    POWERTOOLS_SERVICE_NAME="chatflow-tests",
    POWERTOOLS_LOG_LEVEL="WARNING",
    POWERTOOLS_METRICS_NAMESPACE="ChatFlowTests",
)
