"""Reads ``template.yaml``: the single source of truth for tables, secrets, functions and routes.

Only what the local runtime and the tests need is interpreted; intrinsic functions are
resolved against the physical ids of the resources created locally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    module: str
    attribute: str
    environment: dict[str, str]
    timeout: int
    memory: int


@dataclass(frozen=True)
class HttpRoute:
    method: str
    path: str
    function: str
    authorized: bool

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class Template:
    """A parsed template plus the physical ids of its resources where they exist."""

    document: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = TEMPLATE_PATH, parameters: dict[str, str] | None = None) -> Template:
        document = yaml_parse(path.read_text(encoding="utf-8"))
        defaults = {
            name: str(spec.get("Default", "")) for name, spec in (document.get("Parameters") or {}).items()
        }
        return cls(document=document, parameters=defaults | (parameters or {}))

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.document.get("Resources") or {})

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.resources.items() if v.get("Type") == resource_type}

    # ---- intrinsic functions ----------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Fn::GetAtt":
                name, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attributes.get((name, attr), f"{name}.{attr}")
            if key == "Fn::Sub":
                return self._sub(arg if isinstance(arg, str) else arg[0])
            if key == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(v)) for v in arg[1])
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def _ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": "us-east-1",
            "AWS::AccountId": "123456789012",
            "AWS::StackName": "chatflow-local",
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical_ids.get(name, name)

    def _sub(self, text: str) -> str:
        import re

        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if "." in token:
                name, attr = token.split(".", 1)
                return self.attributes.get((name, attr), token)
            return str(self._ref(token))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # ---- resources ----------------------------------------------------------------------

    def table_definitions(self) -> dict[str, dict[str, Any]]:
        """``create_table`` arguments of every DynamoDB table, keyed by logical id."""
        tables: dict[str, dict[str, Any]] = {}
        for logical_id, resource in self.of_type("AWS::DynamoDB::Table").items():
            props = resource["Properties"]
            spec: dict[str, Any] = {
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                spec["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            if props.get("StreamSpecification"):
                spec["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
            tables[logical_id] = spec
        return tables

    def time_to_live(self, logical_id: str) -> str | None:
        ttl = self.resources[logical_id]["Properties"].get("TimeToLiveSpecification")
        return str(ttl["AttributeName"]) if ttl and ttl.get("Enabled") else None

    def functions(self) -> dict[str, FunctionSpec]:
        globals_ = (self.document.get("Globals") or {}).get("Function") or {}
        global_env = (globals_.get("Environment") or {}).get("Variables") or {}
        specs: dict[str, FunctionSpec] = {}
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            props = resource["Properties"]
            env = global_env | ((props.get("Environment") or {}).get("Variables") or {})
            module, _, attribute = str(props["Handler"]).rpartition(".")
            specs[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_dir=ROOT / str(props["CodeUri"]),
                module=module,
                attribute=attribute,
                environment={k: str(self.resolve(v)) for k, v in env.items()},
                timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
                memory=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
            )
        return specs

    def http_routes(self) -> list[HttpRoute]:
        routes: list[HttpRoute] = []
        for logical_id, resource in self.of_type("AWS::Serverless::Function").items():
            for event in (resource["Properties"].get("Events") or {}).values():
                if event.get("Type") != "HttpApi":
                    continue
                props = event["Properties"]
                auth = (props.get("Auth") or {}).get("Authorizer")
                routes.append(HttpRoute(props["Method"].upper(), props["Path"], logical_id, auth != "NONE"))
        return routes

    def http_authorizer(self) -> str | None:
        """Logical id of the function behind the HTTP API's default authorizer."""
        for resource in self.of_type("AWS::Serverless::HttpApi").values():
            auth = resource["Properties"].get("Auth") or {}
            default = auth.get("DefaultAuthorizer")
            if default:
                arn = auth["Authorizers"][default]["FunctionArn"]
                return str(
                    arn["Fn::GetAtt"][0]
                    if isinstance(arn["Fn::GetAtt"], list)
                    else arn["Fn::GetAtt"].split(".")[0]
                )
        return None
