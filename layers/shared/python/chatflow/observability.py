"""Logger and metrics in one place; the service name comes from POWERTOOLS_SERVICE_NAME.

No Tracer here: importing the X-Ray SDK costs 300-400 ms of cold start. Lambda's
active tracing still records each invocation.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace="ChatFlow")
