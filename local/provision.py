"""Creates the template's resources in emulated AWS (moto), the way CloudFormation would.

Creation is idempotent: on a restart with saved state every resource already exists and
is reused, and a resource added to the template since then is created. Physical names
are the logical ids (buckets: lower-cased and prefixed, as bucket names must be).

Functions reached through S3 notifications and EventBridge rules are invoked
asynchronously by AWS; moto cannot run Lambda code, so the local stack points those
notifications and rules at delivery queues of its own (``chatflow-local-deliver-*``)
and hands what arrives there to the functions.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from local.specs import ACCOUNT_ID, REGION
from local.template import STACK_NAME, Template

ClientFactory = Callable[[str], Any]
DELIVERY_PREFIX = "chatflow-local-deliver-"
# An asynchronous invocation is tried three times (AWS's default of two retries); the
# delivery queue's visibility timeout is the pause between tries.
ASYNC_ATTEMPTS = 3
ASYNC_RETRY_SECONDS = 1

_QUEUE_ATTRIBUTES = {
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
}


@dataclass(frozen=True)
class AsyncDelivery:
    """A delivery queue standing in for Lambda's asynchronous invocation of ``function``."""

    queue_url: str
    function: str
    source: str  # "s3 <bucket>" or "events <rule>"


@dataclass
class Provisioned:
    queue_urls: dict[str, str] = field(default_factory=dict)  # by ARN
    stream_tables: dict[str, str] = field(default_factory=dict)  # stream ARN -> table logical id
    deliveries: list[AsyncDelivery] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def provision(template: Template, client: ClientFactory, api_endpoints: dict[str, str]) -> Provisioned:
    """Create (or find) every resource; fill ``template``'s physical ids and attributes."""
    result = Provisioned()
    _register_names(template, api_endpoints)
    _queues(template, client("sqs"), result)
    _tables(template, client("dynamodb"), result)
    _secrets(template, client("secretsmanager"))
    _buses(template, client("events"))
    _buckets(template, client("s3"), client("sqs"), result)
    _rules(template, client("events"), client("sqs"), result)
    handled = {
        "AWS::SQS::Queue",
        "AWS::DynamoDB::Table",
        "AWS::SecretsManager::Secret",
        "AWS::Events::EventBus",
        "AWS::Events::Rule",
        "AWS::S3::Bucket",
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::Lambda::EventSourceMapping",
        "AWS::ApiGatewayV2::Api",
        "AWS::ApiGatewayV2::Route",
        "AWS::ApiGatewayV2::Integration",
        "AWS::ApiGatewayV2::Authorizer",
        "AWS::ApiGatewayV2::Stage",
        "AWS::ApiGatewayV2::Deployment",
    }
    # Roles, permissions, alarms and log groups have no local behaviour.
    result.skipped = sorted(
        f"{lid} ({r['Type']})" for lid, r in template.resources.items() if r["Type"] not in handled
    )
    return result


def _register_names(template: Template, api_endpoints: dict[str, str]) -> None:
    """Names and ARNs that do not depend on creation, so any resource may refer to any other."""
    for logical_id, resource in template.resources.items():
        raw = resource.get("Properties") or {}
        # Names may be intrinsics (Fn::Sub of the stage...): resolve just those.
        names = ("QueueName", "TableName", "BucketName", "Name", "EventBusName", "FifoQueue", "StageName")
        props = {k: template.resolve(v) if k in names else v for k, v in raw.items()}
        kind = resource["Type"]
        if kind == "AWS::Lambda::Function":
            template.physical_ids[logical_id] = logical_id
            template.attributes[(logical_id, "Arn")] = (
                f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{logical_id}"
            )
        elif kind == "AWS::SQS::Queue":
            name = str(props.get("QueueName") or logical_id)
            if props.get("FifoQueue") and not name.endswith(".fifo"):
                name += ".fifo"
            template.attributes[(logical_id, "QueueName")] = name
            template.attributes[(logical_id, "Arn")] = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}"
        elif kind == "AWS::DynamoDB::Table":
            name = str(props.get("TableName") or logical_id)
            template.physical_ids[logical_id] = name
            template.attributes[(logical_id, "Arn")] = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}"
        elif kind == "AWS::S3::Bucket":
            name = str(props.get("BucketName") or f"{STACK_NAME}-{logical_id}".lower())
            template.physical_ids[logical_id] = name
            template.attributes[(logical_id, "Arn")] = f"arn:aws:s3:::{name}"
            template.attributes[(logical_id, "DomainName")] = f"{name}.s3.amazonaws.com"
            template.attributes[(logical_id, "RegionalDomainName")] = f"{name}.s3.{REGION}.amazonaws.com"
        elif kind == "AWS::Events::EventBus":
            name = str(props.get("Name") or logical_id)
            template.physical_ids[logical_id] = name
            template.attributes[(logical_id, "Name")] = name
            template.attributes[(logical_id, "Arn")] = (
                f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/{name}"
            )
        elif kind == "AWS::Events::Rule":
            name = str(props.get("Name") or f"{STACK_NAME}-{logical_id}")
            bus = str(template.resolve(props.get("EventBusName", "default")))
            template.physical_ids[logical_id] = name
            arn_name = name if bus == "default" else f"{bus}/{name}"
            template.attributes[(logical_id, "Arn")] = f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{arn_name}"
        elif kind == "AWS::ApiGatewayV2::Api":
            api_id = logical_id.lower()
            template.physical_ids[logical_id] = api_id
            template.attributes[(logical_id, "ApiId")] = api_id
            if logical_id in api_endpoints:
                template.attributes[(logical_id, "ApiEndpoint")] = api_endpoints[logical_id]
        elif kind == "AWS::ApiGatewayV2::Stage":
            template.physical_ids[logical_id] = str(props.get("StageName", "$default"))
        elif kind == "AWS::Lambda::LayerVersion":
            template.physical_ids[logical_id] = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{logical_id}:1"


def _exists(error: ClientError, *codes: str) -> bool:
    return error.response.get("Error", {}).get("Code") in codes


def _queues(template: Template, sqs: Any, result: Provisioned) -> None:
    redrives: dict[str, str] = {}
    for logical_id, resource in template.of_type("AWS::SQS::Queue").items():
        props = template.resolve(resource.get("Properties") or {})
        name = template.attributes[(logical_id, "QueueName")]
        attributes = {k: _attribute(v) for k, v in props.items() if k in _QUEUE_ATTRIBUTES}
        url = _ensure_queue(sqs, name, attributes)
        if props.get("RedrivePolicy"):
            redrives[url] = json.dumps(props["RedrivePolicy"])
        template.physical_ids[logical_id] = url
        template.attributes[(logical_id, "QueueUrl")] = url
        result.queue_urls[template.attributes[(logical_id, "Arn")]] = url
    # Once every queue exists: a redrive policy may name a dead-letter queue declared later.
    for url, policy in redrives.items():
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})


def _attribute(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _ensure_queue(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    try:
        return str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    except ClientError as exc:
        if not _exists(exc, "QueueAlreadyExists", "QueueNameExists"):
            raise
    url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    settable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
    if settable:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
    return url


def _tables(template: Template, dynamodb: Any, result: Provisioned) -> None:
    for logical_id, resource in template.of_type("AWS::DynamoDB::Table").items():
        props = template.resolve(resource["Properties"])
        name = template.physical_ids[logical_id]
        spec: dict[str, Any] = {
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if spec["BillingMode"] == "PROVISIONED":
            spec["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                spec[key] = props[key]
        if props.get("StreamSpecification"):
            spec["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        try:
            table = dynamodb.create_table(TableName=name, **spec)["TableDescription"]
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled"):
                dynamodb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
                )
        except ClientError as exc:
            if not _exists(exc, "ResourceInUseException"):
                raise
            table = dynamodb.describe_table(TableName=name)["Table"]
        if table.get("LatestStreamArn"):
            template.attributes[(logical_id, "StreamArn")] = table["LatestStreamArn"]
            result.stream_tables[table["LatestStreamArn"]] = logical_id


def _secrets(template: Template, client: Any) -> None:
    for logical_id, resource in template.of_type("AWS::SecretsManager::Secret").items():
        props = template.resolve(resource.get("Properties") or {})
        name = str(props.get("Name") or f"{STACK_NAME}/{logical_id}")
        try:
            arn = client.create_secret(Name=name, SecretString=_secret_value(props))["ARN"]
        except ClientError as exc:
            if not _exists(exc, "ResourceExistsException"):
                raise
            arn = client.describe_secret(SecretId=name)["ARN"]
        template.physical_ids[logical_id] = str(arn)


def _secret_value(props: dict[str, Any]) -> str:
    if "SecretString" in props:
        return str(props["SecretString"])
    generate = props.get("GenerateSecretString") or {}
    alphabet = string.ascii_letters + string.digits
    if not generate.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    excluded = str(generate.get("ExcludeCharacters", ""))
    alphabet = "".join(c for c in alphabet if c not in excluded)
    value = "".join(secrets.choice(alphabet) for _ in range(int(generate.get("PasswordLength", 32))))
    if generate.get("SecretStringTemplate") and generate.get("GenerateStringKey"):
        document = json.loads(generate["SecretStringTemplate"])
        document[generate["GenerateStringKey"]] = value
        return json.dumps(document)
    return value


def _buses(template: Template, events: Any) -> None:
    for logical_id in template.of_type("AWS::Events::EventBus"):
        try:
            events.create_event_bus(Name=template.physical_ids[logical_id])
        except ClientError as exc:
            if not _exists(exc, "ResourceAlreadyExistsException"):
                raise


def _delivery_queue(sqs: Any, suffix: str) -> str:
    name = f"{DELIVERY_PREFIX}{suffix}"[:80]
    return _ensure_queue(sqs, name, {"VisibilityTimeout": str(ASYNC_RETRY_SECONDS)})


def _queue_arn(url: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{url.rsplit('/', 1)[-1]}"


def _buckets(template: Template, s3: Any, sqs: Any, result: Provisioned) -> None:
    notifications: dict[str, list[dict[str, Any]]] = {}
    for index, notification in enumerate(template.bucket_notifications()):
        url = _delivery_queue(sqs, f"s3-{notification.bucket}-{notification.function}-{index}")
        result.deliveries.append(AsyncDelivery(url, notification.function, f"s3 {notification.bucket}"))
        config: dict[str, Any] = {"QueueArn": _queue_arn(url), "Events": [notification.event]}
        if notification.filter_rules:
            config["Filter"] = {"Key": {"FilterRules": list(notification.filter_rules)}}
        notifications.setdefault(notification.bucket, []).append(config)
    for logical_id, resource in template.of_type("AWS::S3::Bucket").items():
        name = template.physical_ids[logical_id]
        try:
            s3.create_bucket(Bucket=name)
        except ClientError as exc:
            if not _exists(exc, "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        props = template.resolve(resource.get("Properties") or {})
        if props.get("CorsConfiguration"):
            rules = [_cors_rule(rule) for rule in props["CorsConfiguration"].get("CorsRules") or []]
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
        if logical_id in notifications:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"QueueConfigurations": notifications[logical_id]}
            )


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation CORS rule in the S3 API's spelling."""
    converted = {k: v for k, v in rule.items() if k in ("AllowedHeaders", "AllowedMethods", "AllowedOrigins")}
    if "ExposedHeaders" in rule:
        converted["ExposeHeaders"] = rule["ExposedHeaders"]
    if "MaxAge" in rule:
        converted["MaxAgeSeconds"] = int(rule["MaxAge"])
    return converted


def _rules(template: Template, events: Any, sqs: Any, result: Provisioned) -> None:
    for rule in template.event_rules():
        if rule.pattern is None:
            # Scheduled rules are not emulated; the README says so.
            continue
        events.put_rule(
            Name=rule.name,
            EventBusName=rule.bus_name,
            EventPattern=json.dumps(rule.pattern),
            State="ENABLED" if rule.enabled else "DISABLED",
        )
        targets = []
        for target in rule.targets:
            arn = target.arn
            if target.function is not None:
                url = _delivery_queue(sqs, f"events-{rule.logical_id}-{target.target_id}")
                result.deliveries.append(AsyncDelivery(url, target.function, f"events {rule.logical_id}"))
                arn = _queue_arn(url)
            entry: dict[str, Any] = {"Id": target.target_id, "Arn": arn}
            for key in ("Input", "InputPath", "InputTransformer"):
                if key in target.extra:
                    entry[key] = target.extra[key]
            targets.append(entry)
        if targets:
            events.put_targets(Rule=rule.name, EventBusName=rule.bus_name, Targets=targets)
