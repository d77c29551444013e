"""``make invoke FN=<logical id> EVENT=events/<file>.json``: run one function once on an event.

The docker-free twin of ``sam local invoke``. The function runs in its own process, as
under ``make run``. With a ``make run`` running (its ``<state dir>/outputs.json``), the
function gets that stack's configuration: its AWS endpoint, its API URLs and the template
parameters it runs with (``<state dir>/parameters.json``: the fake SMS provider's URL, the
auth mode, the operators; ``CHATFLOW_PARAMETER_OVERRIDES`` given to this call still wins).
Without one, an empty emulated AWS and a fake SMS provider are started for this call.

The handler's result is printed on stdout as JSON; logs go to stderr, ending with the
outcome. Exit code 1 when the function failed: an error, a server error (5xx) or records
it reported as failed (``batchItemFailures``); 2 when the call itself is wrong.

``PYTHONPATH=layers/shared/python:. .venv/bin/python -m local.invoke --env-vars`` prints
``events/env.json``: every function's environment as ``make run`` gives it with its defaults,
in ``sam local invoke --env-vars`` format.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.aws_server import EmulatedAws
from local.config import ConfigError, LocalConfig
from local.fake_provider import FakeProviderSettings, FakeSmsProvider
from local.functions import FunctionRunner, Invocation
from local.provision import provision
from local.specs import REGION, FunctionError
from local.stack_server import FAKE_CREDENTIALS, PARAMETERS_FILE
from local.template import Template, TemplateError

TRIGGER = "make invoke"


@dataclass(frozen=True)
class Target:
    """Where the function runs: the AWS endpoint, the APIs' URLs and the template parameters."""

    aws_endpoint: str
    apis: dict[str, str] | None  # None: where a later ``make run`` would serve them
    parameters: dict[str, str] = field(default_factory=dict)


def _running_stack(config: LocalConfig) -> Target | None:
    """The configuration of a running ``make run``, if there is one."""
    try:
        outputs = json.loads(config.outputs_file.read_text(encoding="utf-8"))
        endpoint = str(outputs["AwsEndpointUrl"])
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
            pass
        apis = json.loads(config.endpoints_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        return None
    try:
        parameters = json.loads((config.state_dir / PARAMETERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a stack started before parameters.json was written
        parameters = {"SmsProviderBaseUrl": outputs["SmsProviderUrl"]} if "SmsProviderUrl" in outputs else {}
    return Target(
        endpoint,
        {str(k): str(v) for k, v in apis.items()},
        {str(k): str(v) for k, v in parameters.items()},
    )


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make invoke", description=__doc__)
    parser.add_argument("function", nargs="?", help="logical id in template.yaml, e.g. ChatsFunction")
    parser.add_argument("event", type=Path, nargs="?", help="event file, e.g. events/chats_list_chats.json")
    parser.add_argument("--env-vars", action="store_true", help="print events/env.json instead")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.env_vars:
        print(json.dumps(env_vars(), indent=2, sort_keys=True))
        return 0
    if args.function is None or args.event is None:
        parser.print_usage(sys.stderr)
        _log("make invoke: give a function and an event file")
        return 2
    try:
        event: dict[str, Any] = json.loads(args.event.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _log(f"make invoke: cannot read the event {args.event}: {exc}")
        return 2
    try:
        config = LocalConfig.from_env(os.environ)
    except ConfigError as exc:
        _log(f"make invoke: {exc}")
        return 2
    running = _running_stack(config)
    aws: EmulatedAws | None = None
    provider: FakeSmsProvider | None = None
    try:
        if running is None:
            aws = EmulatedAws()
            aws.start()
            provider = FakeSmsProvider(FakeProviderSettings(failure_rate=0), host=config.host, log=_log)
            provider.start()
            target = Target(aws.url, None, {"SmsProviderBaseUrl": provider.url})
            _log(
                f"no running 'make run' found: using an empty emulated AWS at {aws.url} "
                f"and a fake SMS provider at {provider.url}"
            )
        else:
            target = running
            _log(f"using the running stack: AWS endpoint {target.aws_endpoint}, its parameters")
        parameters = target.parameters | dict(config.parameters)
        return _invoke(args.function, event, Target(target.aws_endpoint, target.apis, parameters), config)
    except TemplateError as exc:
        _log(f"make invoke: {exc}")
        return 2
    finally:
        if provider is not None:
            provider.stop()
        if aws is not None:
            aws.stop()


def _served_at(template: Template, config: LocalConfig) -> dict[str, str]:
    """Where ``make run`` serves each API of the template: a function that builds a URL from
    its API (``WEBSOCKET_ENDPOINT``) gets that of a stack started later, as make run's own."""
    apis = dict.fromkeys(template.http_apis(), f"http://{config.host}:{config.http_port}")
    for api in template.websocket_apis():
        apis[api.logical_id] = f"ws://{config.host}:{config.ws_port}"
    return apis


def env_vars(config: LocalConfig | None = None) -> dict[str, dict[str, str]]:
    """Every function's environment as ``make run`` gives it with ``config`` (its defaults when
    None): ``sam local invoke --env-vars`` format. Secrets are named, not by ARN (their ARNs end
    with a random suffix; ``GetSecretValue`` takes either)."""
    config = config or LocalConfig()
    aws = EmulatedAws()
    aws.start()
    try:
        parameters = {
            "AuthMode": config.auth_mode,
            "OperatorPhoneNumbers": config.operators,
            "SmsProviderBaseUrl": f"http://{config.host}:{config.provider_port}",
        }
        template = Template.load(config.template_path, parameters=parameters | dict(config.parameters))
        provision(template, lambda service: _client(service, aws.url), _served_at(template, config))
        secrets = _client("secretsmanager", aws.url)
        names = {
            str(template.physical_ids[lid]): str(
                secrets.describe_secret(SecretId=template.physical_ids[lid])["Name"]
            )
            for lid in template.of_type("AWS::SecretsManager::Secret")
        }
        local_aws = f"http://{config.host}:{config.aws_port}"
        return {
            function: {
                name: names.get(value, value.replace(aws.url, local_aws))
                for name, value in spec.environment.items()
            }
            for function, spec in template.functions().items()
        }
    finally:
        aws.stop()


def _client(service: str, endpoint: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(account_id_endpoint_mode="disabled"),
    )


def outcome(result: Any) -> tuple[bool, str]:
    """Whether the function did its work, and what it answered, in a few words."""
    if not isinstance(result, dict):
        return True, "returned"
    failures = result.get("batchItemFailures")
    if failures:
        ids = ", ".join(str(f.get("itemIdentifier")) for f in failures if isinstance(f, dict))
        return False, f"failed records (batchItemFailures): {ids}; their errors are logged above"
    status = result.get("statusCode")
    if isinstance(status, int):
        return status < 500, f"answered {status}"
    if "batchItemFailures" in result:
        return True, "every record handled"
    if "isAuthorized" in result:
        return True, "authorized" if result["isAuthorized"] else "not authorized"
    return True, "returned"


def _invoke(function: str, event: dict[str, Any], target: Target, config: LocalConfig) -> int:
    def client(service: str) -> Any:
        return _client(service, target.aws_endpoint)

    template = Template.load(config.template_path, parameters=target.parameters)
    functions = template.functions()
    if function not in functions:
        known = ", ".join(sorted(functions))
        _log(f"make invoke: no function {function!r} in template.yaml; there are: {known}")
        return 2
    provision(template, client, _served_at(template, config) if target.apis is None else target.apis)
    functions = template.functions()  # environment resolved against the provisioned resources
    inherited = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    base_env = (
        inherited
        | FAKE_CREDENTIALS
        | {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": target.aws_endpoint,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }
    )
    # The runner's own summary says "ok" for any invocation that did not raise: this one says
    # what the function answered instead (a batch with failed records is no success).
    summary = f"{function}  {TRIGGER}  "
    invocations: list[Invocation] = []

    def log(line: str) -> None:
        if not line.startswith(summary):
            _log(line)

    with FunctionRunner({function: functions[function]}, base_env, log=log) as runner:
        runner.add_listener(invocations.append)
        try:
            result = runner.invoke(function, event, TRIGGER)
        except FunctionError as exc:
            print(json.dumps({"errorType": exc.error_type, "errorMessage": exc.error_message}, indent=2))
            _log(_summary(summary, invocations, f"failed: {exc.error_type}: {exc.error_message}"))
            return 1
    print(json.dumps(result, indent=2))
    succeeded, answer = outcome(result)
    _log(_summary(summary, invocations, answer if succeeded else f"failed: {answer}"))
    return 0 if succeeded else 1


def _summary(start: str, invocations: list[Invocation], what: str) -> str:
    if not invocations:
        return start + what
    invocation = invocations[-1]
    line = f"{start}{invocation.duration_ms:.0f} ms  {what}"
    if invocation.cold and invocation.init_duration_ms is not None:
        line += f"  (cold start, init {invocation.init_duration_ms:.0f} ms)"
    return line


if __name__ == "__main__":
    sys.exit(main())
