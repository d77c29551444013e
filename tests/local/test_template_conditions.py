"""template.yaml's conditional parts, as the local stack reads and provisions them.

CloudFormation creates a resource with a ``Condition`` only when the condition holds; the
local stack does the same, so the optional web client (``DeployWebClient``) and the customer
managed key's policy (``KmsKeyArn``) exist locally only when their parameters ask for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from local.aws_server import EmulatedAws
from local.provision import provision
from local.specs import REGION
from local.template import Template

WEB_CLIENT = {
    "WebClientBucket",
    "WebClientBucketPolicy",
    "WebClientOriginAccessControl",
    "WebClientDistribution",
}
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture
def aws() -> Iterator[EmulatedAws]:
    EmulatedAws.reset()
    emulated = EmulatedAws()
    emulated.start()
    try:
        yield emulated
    finally:
        emulated.stop()
        EmulatedAws.reset()


def _clients(aws: EmulatedAws) -> Any:
    def client(service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=aws.url,
            region_name=REGION,
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )

    return client


def test_the_web_client_and_the_key_policy_exist_only_when_their_parameters_ask() -> None:
    # Given the template with its defaults, and with the web client and a customer managed key
    default = Template.load()
    chosen = Template.load(parameters={"DeployWebClient": "true", "KmsKeyArn": KEY_ARN})

    # Then the defaults have neither, nor their outputs
    assert not WEB_CLIENT & set(default.resources)
    assert "KmsKeyUsePolicy" not in default.resources
    assert "WebClientUrl" not in default.outputs()
    # And the chosen parameters have both; resources without a condition are there either way
    assert set(chosen.resources) >= WEB_CLIENT
    assert "KmsKeyUsePolicy" in chosen.resources
    assert set(default.resources) >= {"HttpApiAccessLogs", "WebSocketAccessLogs", "UsersTable"}


def test_provisioning_the_web_client_creates_its_bucket_and_skips_what_has_no_local_behaviour(
    aws: EmulatedAws,
) -> None:
    # Given the template with the web client
    template = Template.load(parameters={"DeployWebClient": "true"})

    # When the local stack provisions it
    provisioned = provision(template, _clients(aws), {})

    # Then the web client's bucket exists beside the campaign bucket
    buckets = {b["Name"] for b in _clients(aws)("s3").list_buckets()["Buckets"]}
    assert template.physical_ids["WebClientBucket"] in buckets
    assert template.physical_ids["CampaignBucket"] in buckets
    # And CloudFront, the bucket policy, the log groups and API Gateway's account role are skipped
    assert "WebClientDistribution (AWS::CloudFront::Distribution)" in provisioned.skipped
    assert "WebClientBucketPolicy (AWS::S3::BucketPolicy)" in provisioned.skipped
    assert "HttpApiAccessLogs (AWS::Logs::LogGroup)" in provisioned.skipped
    assert "ApiGatewayAccount (AWS::ApiGateway::Account)" in provisioned.skipped


def test_provisioning_by_default_creates_no_web_client_bucket(aws: EmulatedAws) -> None:
    # Given the template with its defaults
    template = Template.load()

    # When the local stack provisions it
    provisioned = provision(template, _clients(aws), {})

    # Then only the campaign bucket exists, and nothing of the web client is even listed as skipped
    buckets = [b["Name"] for b in _clients(aws)("s3").list_buckets()["Buckets"]]
    assert buckets == [template.physical_ids["CampaignBucket"]]
    assert not [entry for entry in provisioned.skipped if entry.startswith("WebClient")]


def test_campaign_progress_concurrency_is_reserved_unless_the_parameter_is_zero() -> None:
    # Given the template with its default reservation, with another, and with 0 (no reservation)
    default = Template.load().functions()["CampaignProgressFunction"]
    five = Template.load(parameters={"CampaignProgressReservedConcurrency": "5"}).functions()
    none = Template.load(parameters={"CampaignProgressReservedConcurrency": "0"}).functions()

    # Then the local stack runs the function with that many at most, or unreserved
    assert default.reserved_concurrency == 20
    assert five["CampaignProgressFunction"].reserved_concurrency == 5
    assert none["CampaignProgressFunction"].reserved_concurrency is None


def test_the_sms_senders_timeout_is_the_send_sms_timeout_parameter() -> None:
    # Given the template with its default SendSmsTimeout, and with a shorter one
    default = Template.load().functions()["SendSmsFunction"]
    short = Template.load(parameters={"SendSmsTimeout": "5"}).functions()["SendSmsFunction"]

    # Then the local stack gives SendSmsFunction's invocations that long (their leases end with them)
    assert default.timeout == 30
    assert short.timeout == 5
