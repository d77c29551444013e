"""Logger and metrics in one place; the service name comes from POWERTOOLS_SERVICE_NAME.

No Tracer here: importing the X-Ray SDK costs 300-400 ms of cold start. Lambda's
active tracing still records each invocation.
"""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics(namespace="ChatFlow")

# Most invocations of the stream and queue functions emit no business metric; Powertools
# warns about each of them, which only adds noise to the logs.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
