"""The samples and ``events/env.json`` against template.yaml, without a running stack: every
trigger of every function has a sample its event source would deliver, env.json gives every
function every variable as ``make run`` does, and a function whose environment holds an
intrinsic nothing resolved (``sam local invoke`` without ``--env-vars``) still imports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from moto import mock_aws

from local import invoke, patterns
from local.runtime import LocalFunction
from local.specs import REGION
from local.stack import InProcessStack
from local.template import ROOT, Template

EVENTS = ROOT / "events"


def _triggers_of(sample: dict[str, Any], stack: InProcessStack) -> set[tuple[str, str]]:
    """The (function, trigger) pairs that would get the sample, read from the template (a
    stream record goes to every function of its stream whose filter passes it)."""
    template = stack.template
    context = sample.get("requestContext") or {}
    if "methodArn" in sample:
        (api,) = template.websocket_apis()
        authorizer = api.routes["$connect"].authorizer
        assert authorizer is not None
        return {(authorizer.function, "websocket authorizer")}
    if sample.get("type") == "REQUEST":
        authorizers = {r.authorizer.function for r in template.http_routes() if r.authorizer is not None}
        (function,) = authorizers
        return {(function, "http authorizer")}
    if sample.get("version") == "2.0":
        route = next(r for r in template.http_routes() if r.route_key == sample["routeKey"])
        family = route.path.split("/")[2]
        return {(route.function, f"http /v1/{family}")}
    if "eventType" in context:
        (api,) = template.websocket_apis()
        route_key = context["routeKey"]
        return {(api.routes[route_key].function, f"websocket {route_key}")}
    if "detail-type" in sample:
        for rule in template.event_rules():
            if rule.pattern is not None and patterns.matches(rule.pattern, sample):
                (target,) = [t.function for t in rule.targets if t.function]
                return {(target, f"events {rule.logical_id}")}
        raise AssertionError(f"no rule of the template matches {sample['detail-type']}")
    record = sample["Records"][0]
    if record["eventSource"] == "aws:s3":
        bucket = template.physical_ids[next(iter(template.of_type("AWS::S3::Bucket")))]
        assert record["s3"]["bucket"]["name"] == bucket
        (notification,) = template.bucket_notifications()
        return {(notification.function, "s3")}
    delivered = set()
    for mapping in template.event_source_mappings():
        same = record["eventSourceARN"].split("/stream/")[0] == mapping.source_arn.split("/stream/")[0]
        if same and (not mapping.filters or any(patterns.matches(f, record) for f in mapping.filters)):
            delivered.add((mapping.function, f"{mapping.kind} {mapping.logical_id}"))
    assert delivered, f"no event source of the template would deliver {record}"
    return delivered


def _triggers(stack: InProcessStack) -> set[tuple[str, str]]:
    """Every trigger of every function in template.yaml."""
    template = stack.template
    found = {(r.function, f"http /v1/{r.path.split('/')[2]}") for r in template.http_routes()}
    found |= {(r.authorizer.function, "http authorizer") for r in template.http_routes() if r.authorizer}
    for api in template.websocket_apis():
        for key, route in api.routes.items():
            found.add((route.function, f"websocket {key}"))
            if route.authorizer is not None:
                found.add((route.authorizer.function, "websocket authorizer"))
    found |= {(m.function, f"{m.kind} {m.logical_id}") for m in template.event_source_mappings()}
    found |= {(n.function, "s3") for n in template.bucket_notifications()}
    for rule in template.event_rules():
        found |= {(t.function, f"events {rule.logical_id}") for t in rule.targets if t.function}
    return found


def test_every_trigger_of_every_function_has_a_sample_its_source_would_deliver() -> None:
    # Given the template's resources (names and ARNs as make run makes them)
    with mock_aws():
        stack = InProcessStack.create()
    # When each sample is matched to the trigger it is an event of (a stream record must pass
    # the event source's filter, an EventBridge event the rule's pattern)
    covered: dict[tuple[str, str], list[str]] = {}
    for path in sorted(EVENTS.glob("*.json")):
        if path.name != "env.json":
            for trigger in _triggers_of(json.loads(path.read_text()), stack):
                covered.setdefault(trigger, []).append(path.name)
    # Then every trigger has at least one, and no sample is for something the template lacks
    assert set(covered) == _triggers(stack), covered


def test_the_fanout_samples_pass_the_fanouts_own_filters() -> None:
    with mock_aws():
        stack = InProcessStack.create()
    for sample in ("fanout_chat_message.json", "fanout_presence_online.json"):
        functions = {
            function for function, _ in _triggers_of(json.loads((EVENTS / sample).read_text()), stack)
        }
        assert "FanoutFunction" in functions, sample


# ---- events/env.json ----------------------------------------------------------------------------


def test_env_json_gives_every_function_every_variable_as_make_run_does() -> None:
    # Given env.json, and each function's environment as make run resolves it with its defaults
    env_file = json.loads((EVENTS / "env.json").read_text())
    resolved = invoke.env_vars()

    # Then it covers every function of the template and every variable of each, with those values
    assert set(env_file) == set(Template.load().functions())
    for function, variables in resolved.items():
        assert env_file[function] == variables, (
            f"{function}: regenerate events/env.json (README, 'Running one function')"
        )
    # And the values name the local stack at its default ports
    realtime = env_file["RealtimeActionsFunction"]
    assert realtime["WEBSOCKET_ENDPOINT"] == "ws://127.0.0.1:3001/dev"
    assert env_file["SendSmsFunction"]["SEND_SMS_QUEUE_URL"].startswith("http://127.0.0.1:4566/")
    assert env_file["SendSmsFunction"]["SMS_PROVIDER_BASE_URL"] == "http://127.0.0.1:3002"


# ---- unresolved intrinsics ----------------------------------------------------------------------

# What template.yaml's !Sub "${WebSocketApi.ApiEndpoint}/${Stage}" becomes where nothing resolves
# it: SAM CLI 1.170's ``sam local invoke`` without --env-vars gives "$WebSocketApi.ApiEndpoint/dev";
# a raw template gives "${WebSocketApi.ApiEndpoint}/dev".
_ATTRIBUTE = re.compile(r"^(?P<attribute>[A-Z][A-Za-z0-9]*\.[A-Za-z][A-Za-z0-9.]*)(?P<rest>.*)$")
UNRESOLVED_FORMS: dict[str, Callable[[str, str], str]] = {
    "as sam local invoke leaves it": lambda attribute, rest: f"${attribute}{rest}",
    "raw": lambda attribute, rest: "${" + attribute + "}" + rest,
    "empty": lambda attribute, rest: "",
}
# Each function's first invocation in these tests: its sample.
SAMPLE_OF = {
    "ApiMetaFunction": "api_meta_health.json",
    "AuthorizerFunction": "authorizer_http_request.json",
    "IdentityFunction": "identity_get_me.json",
    "ChatsFunction": "chats_list_chats.json",
    "CampaignsFunction": "campaigns_list.json",
    "SendSmsFunction": "send_sms_commands.json",
    "SmsDeadLettersFunction": "sms_dead_letters_poison.json",
    "SmsEventsFunction": "sms_events_stream.json",
    "SmsWebhooksFunction": "sms_webhooks_inbound.json",
    "CampaignLoaderFunction": "campaign_loader_load_job.json",
    "CampaignProgressFunction": "campaign_progress_sms_sent.json",
    "ForwardRoutesFunction": "forward_routes_sms_sent.json",
    "ChatActivityFunction": "chat_activity_message_insert.json",
    "RealtimeConnectionsFunction": "realtime_connections_connect.json",
    "RealtimeActionsFunction": "realtime_actions_ping.json",
    "FanoutFunction": "fanout_chat_message.json",
    "ForwardsFunction": "forwards_wait_over.json",
}


def _refers_to_resource(value: Any, resources: set[str]) -> bool:
    """Whether an environment value of the transformed template is an intrinsic of a resource."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"]) in resources
        if "Fn::GetAtt" in value:
            return True
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            names = {token.split(".")[0] for token in re.findall(r"\$\{([^}!]+)\}", str(text))}
            return bool(names & resources)
        return any(_refers_to_resource(v, resources) for v in value.values())
    if isinstance(value, list):
        return any(_refers_to_resource(v, resources) for v in value)
    return False


def _start_and_run(
    function: LocalFunction, sample: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> tuple[Any, str]:
    """Cold start (the import must succeed), then the first invocation on ``sample``: what the
    function answered (None when it raised), and everything it logged and said."""
    capfd.readouterr()
    caplog.clear()
    function.module  # noqa: B018 - the cold start
    try:
        result: Any = function.invoke(json.loads((EVENTS / sample).read_text()))
        raised = ""
    except Exception as exc:
        result, raised = None, f"{type(exc).__name__}: {exc}"
    out = capfd.readouterr()
    return result, f"{raised}\n{caplog.text}\n{out.out}\n{out.err}\n{json.dumps(result)}"


def test_every_function_of_the_template_has_a_first_sample_here() -> None:
    assert set(SAMPLE_OF) == set(Template.load().functions())


@pytest.mark.parametrize("form", list(UNRESOLVED_FORMS))
def test_a_function_with_an_unresolved_endpoint_imports_and_says_what_to_set_when_it_needs_it(
    form: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with mock_aws():
        stack = InProcessStack.create()  # its tables are named as sam local invoke names them
        raw = Template.load().functions()  # nothing provisioned: attributes stay unresolved
        base = {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
        checked = 0
        for logical_id, spec in raw.items():
            unresolved = {k: _ATTRIBUTE.match(v) for k, v in spec.environment.items() if _ATTRIBUTE.match(v)}
            if not unresolved:
                continue
            # Given the function's environment with such a value
            environment = dict(stack.functions[logical_id].spec.environment)
            for name, found in unresolved.items():
                assert found is not None
                environment[name] = UNRESOLVED_FORMS[form](found["attribute"], found["rest"])
            function = LocalFunction(
                replace(spec, logical_id=f"{logical_id}Unresolved{len(form)}", environment=environment), base
            )

            # When it starts, Then it imports; when it first runs, Then it works if that path does
            # not need the value, else the failure names the variable, says it is unresolved and
            # what to set
            result, said = _start_and_run(function, SAMPLE_OF[logical_id], capfd, caplog)
            if logical_id == "RealtimeConnectionsFunction":  # $connect records; it posts nothing
                assert result == {"statusCode": 200}, said
            else:
                assert "WEBSOCKET_ENDPOINT=" in said, said
                assert "--env-vars events/env.json" in said, said
                if form != "empty":
                    assert "an intrinsic of template.yaml that nothing resolved" in said, said
            checked += 1
    assert checked == 3  # the real-time functions: connections, actions, fan-out


def test_every_function_imports_without_its_resources_and_its_first_use_names_what_is_missing(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    template = Template.load()
    resources = set(template.resources)
    base = {"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}
    with mock_aws():
        for logical_id, spec in template.functions().items():
            raw = template.properties(logical_id).get("Environment", {}).get("Variables", {})
            # Given the function's environment without any value made from a resource
            missing = {name for name, value in raw.items() if _refers_to_resource(value, resources)}
            environment = {k: v for k, v in spec.environment.items() if k not in missing}
            function = LocalFunction(
                replace(spec, logical_id=f"{logical_id}Missing", environment=environment), base
            )

            # When it starts, Then it imports; when it first runs, Then it works (it needs none)
            # or what it logs names a missing variable (at cold start, and where it is needed)
            result, said = _start_and_run(function, SAMPLE_OF[logical_id], capfd, caplog)
            if not missing or logical_id == "ApiMetaFunction":
                assert result["statusCode"] == 200, said
                continue
            named = [name for name in missing if f"{name} is not set" in said]
            assert named, (logical_id, said[-3000:])
            assert "--env-vars events/env.json" in said
