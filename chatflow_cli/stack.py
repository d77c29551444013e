"""Which stack the CLI talks to: its Outputs (CONTRACT §6), and AWS clients for it.

By default the local stack's ``<state dir>/outputs.json`` (what ``make run`` writes);
``--outputs PATH`` reads another file; ``--stack-name`` reads a deployed
CloudFormation stack's Outputs instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from chatflow_cli.errors import CliError, Unreachable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

# The local stack emulates one region (local/specs.py) and accepts any credentials.
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
LOCAL_HINT = "is `make run` running?"
DEPLOYED_HINT = "check your network connection"


@dataclass(frozen=True)
class Stack:
    """A stack's Outputs and where they came from (for messages)."""

    outputs: Mapping[str, str]
    source: str
    region: str | None = None

    @property
    def is_local(self) -> bool:
        """The local stack names its emulated AWS endpoint; a deployed stack does not."""
        return bool(self.outputs.get("AwsEndpointUrl"))

    @property
    def hint(self) -> str:
        return LOCAL_HINT if self.is_local else DEPLOYED_HINT

    def output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise CliError(f"{self.source} has no {key} output: is it a ChatFlow stack, and up to date?")
        return value

    def optional(self, key: str) -> str | None:
        return self.outputs.get(key) or None

    # ---- AWS clients ------------------------------------------------------------------------

    def _client_args(self) -> dict[str, Any]:
        if self.is_local:
            return {
                "endpoint_url": self.output("AwsEndpointUrl"),
                "region_name": self.region or LOCAL_REGION,
                "config": Config(
                    account_id_endpoint_mode="disabled",
                    retries={"max_attempts": 2},
                    connect_timeout=5,
                ),
                **LOCAL_CREDENTIALS,
            }
        return {"region_name": self.region} if self.region else {}

    def dynamodb(self) -> DynamoDBClient:
        with aws_errors(self):
            return boto3.client("dynamodb", **self._client_args())

    def sqs(self) -> SQSClient:
        with aws_errors(self):
            return boto3.client("sqs", **self._client_args())


def local_stack(path: Path, *, explicit: bool) -> Stack:
    """The outputs file at ``path``; ``explicit`` when the user named it (``--outputs``)."""
    if not path.is_file():
        if explicit:
            raise CliError(f"no outputs file at {path}")
        raise CliError(f"no local stack found at {path}: run `make run`, or pass --stack-name")
    try:
        outputs = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the stack outputs in {path}: {exc}") from exc
    if not isinstance(outputs, dict) or not all(isinstance(v, str) for v in outputs.values()):
        raise CliError(f"{path} is not a JSON object of stack outputs (names to strings)")
    return Stack(outputs=outputs, source=f"the stack of {path}")


def cloudformation_stack(name: str, region: str | None, client: Any = None) -> Stack:
    """The Outputs of the CloudFormation stack ``name`` (``describe_stacks``)."""
    probe = Stack(outputs={}, source=f"CloudFormation stack {name!r}", region=region)
    with aws_errors(probe):
        cfn = client or boto3.client("cloudformation", **probe._client_args())
        where = str(cfn.meta.region_name)
        try:
            stacks = cfn.describe_stacks(StackName=name)["Stacks"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationError":
                raise CliError(f"no CloudFormation stack named {name!r} in {where}") from exc
            raise
    outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stacks[0].get("Outputs") or []}
    return Stack(outputs=outputs, source=f"CloudFormation stack {name!r} ({where})", region=where)


@contextmanager
def aws_errors(stack: Stack) -> Iterator[None]:
    """botocore's failures as ``CliError``: the caller handles the error codes it expects first."""
    try:
        yield
    except EndpointConnectionError as exc:
        raise Unreachable(str(exc.kwargs.get("endpoint_url", "AWS")), stack.hint) from exc
    except NoCredentialsError as exc:
        raise CliError(
            "no AWS credentials found: configure them (aws configure, AWS_PROFILE), "
            "or use the local stack (make run)"
        ) from exc
    except NoRegionError as exc:
        raise CliError("no AWS region: pass --region or set AWS_REGION") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise CliError(f"{error.get('Code', 'aws_error')}: {error.get('Message', str(exc))}") from exc
    except BotoCoreError as exc:
        raise CliError(f"AWS call failed: {exc}") from exc
