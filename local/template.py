"""Reads ``template.yaml`` through the SAM transform: the single source of truth of the local stack.

The SAM template is translated to plain CloudFormation with ``aws-sam-translator`` (the
library ``sam deploy`` relies on), so the local stack sees exactly the resources AWS
would create: tables, queues, buckets, buses and rules, functions with their layers and
environment, HTTP and WebSocket routes, authorizers and event source mappings. Intrinsic
functions are resolved against the physical ids of the resources created locally.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml  # type: ignore[import-untyped]  # no stubs in requirements/dev.txt
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import intrinsics_multi_constructor

from local.specs import (
    ACCOUNT_ID,
    REGION,
    FunctionSpec,
    WebSocketApiSpec,
    WebSocketAuthorizer,
    WebSocketRoute,
)

# The translator warns about usage metrics it would publish inside CloudFormation.
logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
STACK_NAME = "chatflow-local"
# Local code folders ride through the transform as S3 locations in this made-up bucket.
_CODE_BUCKET = "chatflow-local-code"


class _TemplateLoader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """PyYAML's safe loader on libyaml's parser, with CloudFormation's short tags (``!Ref``,
    ``!Sub``...) read as samtranslator's ``yaml_parse`` reads them."""


_TemplateLoader.add_multi_constructor("!", intrinsics_multi_constructor)


def parse_template(text: str) -> dict[str, Any]:
    """A SAM template's document, as samtranslator's ``yaml_parse`` gives it.

    ``yaml_parse`` runs PyYAML's pure-Python parser: 0.11 s for template.yaml, three times
    per stack start (the parameters are read before the transform); libyaml's takes 0.015 s.
    tests/local/test_template_parse.py checks that both give the same document."""
    document = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506 - a safe loader
    return document if isinstance(document, dict) else {}


_NO_VALUE = object()
_FUNCTION_IN_URI = re.compile(r"\$\{(\w+)\.Arn\}")


class TemplateError(Exception):
    """The template uses something the local stack cannot run; the message says what."""


@dataclass(frozen=True)
class HttpAuthorizer:
    name: str
    function: str
    payload_format_version: str = "2.0"
    simple_responses: bool = True
    identity_sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str
    function: str
    authorizer: HttpAuthorizer | None = None

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"

    @property
    def authorized(self) -> bool:
        return self.authorizer is not None


@dataclass(frozen=True)
class EventSourceMapping:
    """An SQS queue or a DynamoDB stream feeding a function."""

    logical_id: str
    function: str
    source_arn: str
    batch_size: int
    batching_window_seconds: float = 0.0
    report_batch_item_failures: bool = False
    maximum_retry_attempts: int = -1
    bisect_on_error: bool = False
    on_failure_arn: str | None = None
    filters: tuple[dict[str, Any], ...] = ()
    starting_position: str = "LATEST"
    maximum_concurrency: int | None = None
    enabled: bool = True

    @property
    def kind(self) -> str:
        return "sqs" if ":sqs:" in self.source_arn else "dynamodb"


@dataclass(frozen=True)
class BucketNotification:
    bucket: str
    function: str
    event: str
    filter_rules: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class RuleTarget:
    target_id: str
    arn: str
    function: str | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventRule:
    logical_id: str
    name: str
    bus_name: str
    pattern: dict[str, Any] | None
    schedule: str | None
    enabled: bool
    targets: tuple[RuleTarget, ...]


@dataclass
class Template:
    """A transformed template plus the physical ids of its resources where they exist."""

    document: dict[str, Any]
    base_dir: Path = ROOT
    parameters: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    # The made-up S3 key each local code folder travels under through the transform.
    code_locations: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = TEMPLATE_PATH, parameters: dict[str, str] | None = None) -> Template:
        source = parse_template(path.read_text(encoding="utf-8"))
        declared = source.get("Parameters") or {}
        unknown = set(parameters or {}) - set(declared)
        if unknown:
            raise TemplateError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        values = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
        values |= parameters or {}
        for name, value in values.items():
            allowed = declared[name].get("AllowedValues")
            if allowed and value not in [str(a) for a in allowed]:
                raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
        base_dir = path.resolve().parent
        locations: dict[str, Path] = {}
        for resource in (source.get("Resources") or {}).values():
            _code_to_s3(resource.get("Properties") or {}, base_dir, locations)
        _code_to_s3(((source.get("Globals") or {}).get("Function")) or {}, base_dir, locations)
        document = _transform(source, values)
        return cls(document=document, base_dir=base_dir, parameters=values, code_locations=locations)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources CloudFormation would create: those without a Condition or whose Condition holds."""
        return {
            logical_id: resource
            for logical_id, resource in (self.document.get("Resources") or {}).items()
            if "Condition" not in resource or self.condition(str(resource["Condition"]))
        }

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v.get("Type") == resource_type}

    def properties(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resources[logical_id].get("Properties") or {})

    # ---- intrinsic functions ----------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        resolved = self._resolve(value)
        return None if resolved is _NO_VALUE else resolved

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(str(arg))
            if key == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self._get_att(str(name), str(attr))
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self._sub(arg, {})
                variables = {k: self._resolve(v) for k, v in arg[1].items()}
                return self._sub(str(arg[0]), variables)
            if key == "Fn::Join":
                parts = [self._resolve(v) for v in self._resolve(arg[1])]
                return str(arg[0]).join(str(p) for p in parts if p is not _NO_VALUE)
            if key == "Fn::Select":
                return self._resolve(arg[1])[int(self._resolve(arg[0]))]
            if key == "Fn::Split":
                return str(self._resolve(arg[1])).split(str(arg[0]))
            if key == "Fn::If":
                chosen = arg[1] if self.condition(str(arg[0])) else arg[2]
                return self._resolve(chosen)
            if key == "Fn::FindInMap":
                mapping = (self.document.get("Mappings") or {})[self._resolve(arg[0])]
                return mapping[self._resolve(arg[1])][self._resolve(arg[2])]
        if isinstance(value, dict):
            items = {k: self._resolve(v) for k, v in value.items()}
            return {k: v for k, v in items.items() if v is not _NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self._resolve(v) for v in value) if v is not _NO_VALUE]
        return value

    def condition(self, name: str) -> bool:
        return self._evaluate((self.document.get("Conditions") or {})[name])

    def _evaluate(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            ((key, arg),) = expression.items()
            if key == "Fn::Equals":
                return str(self._resolve(arg[0])) == str(self._resolve(arg[1]))
            if key == "Fn::Not":
                return not self._evaluate(arg[0])
            if key == "Fn::And":
                return all(self._evaluate(a) for a in arg)
            if key == "Fn::Or":
                return any(self._evaluate(a) for a in arg)
            if key == "Condition":
                return self.condition(str(arg))
        raise TemplateError(f"unsupported condition expression: {expression!r}")

    def _ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical_ids.get(name, name)

    def _get_att(self, name: str, attr: str) -> str:
        return self.attributes.get((name, attr), f"{name}.{attr}")

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and token not in self.parameters:
                name, attr = token.split(".", 1)
                return self._get_att(name, attr)
            return str(self._ref(token))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # ---- resources ----------------------------------------------------------------------

    def code_dir(self, s3_location: dict[str, Any]) -> Path:
        key = str(s3_location["S3Key"])
        if key not in self.code_locations:
            raise TemplateError(
                f"code at s3://{s3_location.get('S3Bucket')}/{key} cannot run locally: use a folder"
            )
        return self.code_locations[key]

    def function_of(self, reference: Any) -> str | None:
        """The logical id of the function a Ref / GetAtt / ARN ``Fn::Sub`` points at, if any."""
        functions = self.of_type("AWS::Lambda::Function")
        if isinstance(reference, dict):
            if "Ref" in reference and reference["Ref"] in functions:
                return str(reference["Ref"])
            if "Fn::GetAtt" in reference:
                att = reference["Fn::GetAtt"]
                name = att[0] if isinstance(att, list) else str(att).split(".")[0]
                return str(name) if name in functions else None
            if "Fn::Sub" in reference:
                text, variables = reference["Fn::Sub"], {}
                if isinstance(text, list):
                    text, variables = text[0], text[1]
                for name in re.findall(r"\$\{([\w.:]+)\}", str(text)):
                    if name in variables and (found := self.function_of(variables[name])):
                        return found
                match = _FUNCTION_IN_URI.search(str(text))
                return match.group(1) if match and match.group(1) in functions else None
            return None
        if isinstance(reference, str):
            for logical_id in functions:
                if reference in (logical_id, self._get_att(logical_id, "Arn")):
                    return logical_id
        return None

    def functions(self) -> dict[str, FunctionSpec]:
        specs: dict[str, FunctionSpec] = {}
        for logical_id, resource in self.of_type("AWS::Lambda::Function").items():
            props = resource["Properties"]
            env = (props.get("Environment") or {}).get("Variables") or {}
            layers: list[Path] = []
            for layer in props.get("Layers") or []:
                layer_id = layer.get("Ref") if isinstance(layer, dict) else None
                if layer_id not in self.resources:
                    raise TemplateError(f"{logical_id}: only layers of this template run locally ({layer})")
                layers.append(self.code_dir(self.properties(str(layer_id))["Content"]))
            # May be an Fn::If whose other branch is AWS::NoValue: no reservation.
            reserved = self.resolve(props.get("ReservedConcurrentExecutions"))
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_dir=self.code_dir(props["Code"]),
                handler=str(props["Handler"]),
                environment={k: str(self.resolve(v)) for k, v in env.items()},
                timeout=int(self.resolve(props.get("Timeout", 3))),
                memory=int(self.resolve(props.get("MemorySize", 128))),
                layer_dirs=tuple(layers),
                reserved_concurrency=int(reserved) if reserved is not None else None,
            )
        return specs

    def function_dead_letter_arn(self, logical_id: str) -> str | None:
        target = (self.properties(logical_id).get("DeadLetterConfig") or {}).get("TargetArn")
        return str(self.resolve(target)) if target else None

    # ---- HTTP APIs ------------------------------------------------------------------------

    def http_apis(self) -> list[str]:
        return [
            logical_id
            for logical_id, resource in self.of_type("AWS::ApiGatewayV2::Api").items()
            if resource["Properties"].get("ProtocolType", "HTTP") == "HTTP"
        ]

    def http_routes(self) -> list[HttpRoute]:
        routes: list[HttpRoute] = []
        for api_id in self.http_apis():
            body = self.properties(api_id).get("Body") or {}
            schemes = (body.get("components") or {}).get("securitySchemes") or {}
            authorizers = {name: self._http_authorizer(name, s) for name, s in schemes.items()}
            for path, operations in (body.get("paths") or {}).items():
                for method, operation in operations.items():
                    integration = operation.get("x-amazon-apigateway-integration")
                    if not isinstance(integration, dict):
                        continue
                    function = self.function_of(integration.get("uri"))
                    if function is None:
                        raise TemplateError(f"{api_id} {method} {path}: only Lambda integrations run locally")
                    security = operation.get("security", body.get("security")) or []
                    names = [name for requirement in security for name in requirement if name != "NONE"]
                    verb = "ANY" if method == "x-amazon-apigateway-any-method" else method.upper()
                    route_path = "$default" if path == "/$default" else path
                    authorizer = authorizers.get(names[0]) if names else None
                    routes.append(HttpRoute(verb, route_path, function, authorizer))
        return routes

    def _http_authorizer(self, name: str, scheme: dict[str, Any]) -> HttpAuthorizer | None:
        config = scheme.get("x-amazon-apigateway-authorizer") or {}
        function = self.function_of(config.get("authorizerUri"))
        if function is None:
            return None
        sources = config.get("identitySource") or []
        if isinstance(sources, str):
            sources = [s.strip() for s in sources.split(",") if s.strip()]
        return HttpAuthorizer(
            name=name,
            function=function,
            payload_format_version=str(config.get("authorizerPayloadFormatVersion", "2.0")),
            simple_responses=bool(config.get("enableSimpleResponses", False)),
            identity_sources=tuple(str(s) for s in sources),
        )

    def http_cors(self) -> dict[str, Any] | None:
        for api_id in self.http_apis():
            props = self.properties(api_id)
            cors = props.get("CorsConfiguration") or (props.get("Body") or {}).get("x-amazon-apigateway-cors")
            if cors:
                return {k[0].lower() + k[1:]: v for k, v in cors.items()}
        return None

    # ---- WebSocket APIs ------------------------------------------------------------------

    def websocket_apis(self, api_ids: dict[str, str] | None = None) -> list[WebSocketApiSpec]:
        specs: list[WebSocketApiSpec] = []
        for logical_id, resource in self.of_type("AWS::ApiGatewayV2::Api").items():
            props = resource["Properties"]
            if props.get("ProtocolType") != "WEBSOCKET":
                continue
            stage = next(
                (
                    str(self.resolve(s["Properties"].get("StageName", "$default")))
                    for s in self.of_type("AWS::ApiGatewayV2::Stage").values()
                    if s["Properties"].get("ApiId") == {"Ref": logical_id}
                ),
                "$default",
            )
            routes: dict[str, WebSocketRoute] = {}
            for route_id, route in self.of_type("AWS::ApiGatewayV2::Route").items():
                rprops = route["Properties"]
                if rprops.get("ApiId") != {"Ref": logical_id}:
                    continue
                integration = self._integration_of(route_id, rprops.get("Target"))
                function = self.function_of(self.properties(integration).get("IntegrationUri"))
                if function is None:
                    raise TemplateError(f"{route_id}: only Lambda integrations run locally")
                authorizer = None
                if rprops.get("AuthorizationType") == "CUSTOM" and rprops.get("AuthorizerId"):
                    auth_id = str(rprops["AuthorizerId"]["Ref"])
                    aprops = self.properties(auth_id)
                    auth_function = self.function_of(aprops.get("AuthorizerUri"))
                    if auth_function is None:
                        raise TemplateError(f"{auth_id}: only Lambda authorizers run locally")
                    authorizer = WebSocketAuthorizer(
                        auth_function, tuple(str(s) for s in aprops.get("IdentitySource") or [])
                    )
                key = str(rprops["RouteKey"])
                routes[key] = WebSocketRoute(
                    route_key=key,
                    function=function,
                    authorizer=authorizer,
                    returns_response=bool(rprops.get("RouteResponseSelectionExpression")),
                )
            specs.append(
                WebSocketApiSpec(
                    logical_id=logical_id,
                    api_id=(api_ids or {}).get(logical_id, logical_id.lower()[:10]),
                    stage=stage,
                    route_selection_expression=str(
                        props.get("RouteSelectionExpression", "$request.body.action")
                    ),
                    routes=routes,
                )
            )
        return specs

    def _integration_of(self, route_id: str, target: Any) -> str:
        text = target
        if isinstance(target, dict) and "Fn::Join" in target:
            parts = target["Fn::Join"][1]
            refs = [p["Ref"] for p in parts if isinstance(p, dict) and "Ref" in p]
            if refs:
                return str(refs[0])
        if isinstance(target, dict) and "Fn::Sub" in target:
            text = target["Fn::Sub"]
        found = re.search(r"integrations/\$\{(\w+)\}", str(text))
        if not found:
            raise TemplateError(f"{route_id}: Target must be integrations/<IntegrationLogicalId>")
        return found.group(1)

    # ---- event sources -------------------------------------------------------------------

    def event_source_mappings(self) -> list[EventSourceMapping]:
        mappings: list[EventSourceMapping] = []
        for logical_id, resource in self.of_type("AWS::Lambda::EventSourceMapping").items():
            raw = resource["Properties"]
            function = self.function_of(raw["FunctionName"])
            props = {k: v if k == "FunctionName" else self.resolve(v) for k, v in raw.items()}
            if function is None:
                raise TemplateError(f"{logical_id}: FunctionName must reference a function of the template")
            source_arn = str(self.resolve(props["EventSourceArn"]))
            is_sqs = ":sqs:" in source_arn
            on_failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            filters = tuple(
                json.loads(f["Pattern"]) if isinstance(f["Pattern"], str) else f["Pattern"]
                for f in (props.get("FilterCriteria") or {}).get("Filters") or []
            )
            scaling = props.get("ScalingConfig") or {}
            mappings.append(
                EventSourceMapping(
                    logical_id=logical_id,
                    function=function,
                    source_arn=source_arn,
                    batch_size=int(props.get("BatchSize", 10 if is_sqs else 100)),
                    batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in (props.get("FunctionResponseTypes") or []),
                    maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
                    bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
                    on_failure_arn=str(self.resolve(on_failure)) if on_failure else None,
                    filters=filters,
                    starting_position=str(props.get("StartingPosition", "LATEST")),
                    maximum_concurrency=int(scaling["MaximumConcurrency"])
                    if "MaximumConcurrency" in scaling
                    else None,
                    enabled=bool(props.get("Enabled", True)),
                )
            )
        return mappings

    def bucket_notifications(self) -> list[BucketNotification]:
        found: list[BucketNotification] = []
        for logical_id, resource in self.of_type("AWS::S3::Bucket").items():
            config = resource.get("Properties", {}).get("NotificationConfiguration") or {}
            for entry in config.get("LambdaConfigurations") or []:
                function = self.function_of(entry["Function"])
                if function is None:
                    raise TemplateError(f"{logical_id}: notifications must target a function of the template")
                rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
                found.append(
                    BucketNotification(
                        bucket=logical_id,
                        function=function,
                        event=str(entry["Event"]),
                        filter_rules=tuple({"Name": str(r["Name"]), "Value": str(r["Value"])} for r in rules),
                    )
                )
        return found

    def event_rules(self) -> list[EventRule]:
        rules: list[EventRule] = []
        for logical_id, resource in self.of_type("AWS::Events::Rule").items():
            props = resource["Properties"]
            pattern = props.get("EventPattern")
            if isinstance(pattern, str):
                pattern = json.loads(pattern)
            targets = []
            for target in props.get("Targets") or []:
                extra = {k: self.resolve(v) for k, v in target.items() if k not in ("Id", "Arn")}
                targets.append(
                    RuleTarget(
                        target_id=str(target["Id"]),
                        arn=str(self.resolve(target["Arn"])),
                        function=self.function_of(target["Arn"]),
                        extra=extra,
                    )
                )
            rules.append(
                EventRule(
                    logical_id=logical_id,
                    name=str(props.get("Name") or f"{STACK_NAME}-{logical_id}"),
                    bus_name=str(self.resolve(props.get("EventBusName", "default"))),
                    pattern=self.resolve(pattern) if pattern else None,
                    schedule=props.get("ScheduleExpression"),
                    enabled=props.get("State", "ENABLED") == "ENABLED",
                    targets=tuple(targets),
                )
            )
        return rules

    def outputs(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for name, output in (self.document.get("Outputs") or {}).items():
            if output.get("Condition") and not self.condition(str(output["Condition"])):
                continue
            values[name] = str(self.resolve(output["Value"]))
        return values


def _transform(source: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """The CloudFormation ``sam deploy`` would send (local code folders already made S3 keys).

    The SAM translator takes about 0.15 s, and the test suite starts a stack for most of its
    tests from the same template and parameters: the translation of a (template, parameters)
    pair is kept as JSON, and each caller gets its own copy of it."""
    return dict(
        json.loads(_translated(json.dumps(source, sort_keys=True), json.dumps(parameters, sort_keys=True)))
    )


@functools.lru_cache(maxsize=16)
def _translated(source: str, parameters: str) -> str:
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=REGION))
    try:
        document = translator.translate(
            json.loads(source), parameter_values=json.loads(parameters), get_managed_policy_map=dict
        )
    except Exception as exc:  # the translator's own errors say what is wrong
        raise TemplateError(f"the SAM transform failed: {exc}") from exc
    return json.dumps(document)


def _code_to_s3(props: dict[str, Any], base_dir: Path, locations: dict[str, Path]) -> None:
    for key in ("CodeUri", "ContentUri"):
        value = props.get(key)
        if isinstance(value, str) and not value.startswith("s3://"):
            s3_key = f"code-{len(locations)}"
            locations[s3_key] = (base_dir / value).resolve()
            props[key] = f"s3://{_CODE_BUCKET}/{s3_key}"
