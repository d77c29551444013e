"""``make invoke FN=<logical id> EVENT=events/<file>.json``: run one function once on an event.

The docker-free twin of ``sam local invoke``. The function runs in its own process, as
under ``make run``, against the AWS endpoint of a running ``make run`` when there is one
(from ``<state dir>/outputs.json``), else against an empty emulated AWS started for this
call. The handler's result is printed on stdout as JSON; logs go to stderr. Exit code 1
when the function fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.aws_server import EmulatedAws
from local.config import ConfigError, LocalConfig
from local.functions import FunctionRunner
from local.provision import provision
from local.specs import REGION, FunctionError
from local.stack_server import FAKE_CREDENTIALS
from local.template import Template, TemplateError


def _running_stack(config: LocalConfig) -> tuple[str, dict[str, str]] | None:
    """The AWS endpoint and API endpoints of a running ``make run``, if there is one."""
    try:
        outputs = json.loads(config.outputs_file.read_text(encoding="utf-8"))
        endpoint = str(outputs["AwsEndpointUrl"])
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
            pass
        apis = json.loads(config.endpoints_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        return None
    return endpoint, {str(k): str(v) for k, v in apis.items()}


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make invoke", description=__doc__)
    parser.add_argument("function", help="logical id of the function in template.yaml, e.g. ChatsFunction")
    parser.add_argument("event", type=Path, help="event file, e.g. events/chats_list_chats.json")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
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
    if running is None:
        aws = EmulatedAws()
        aws.start()
        endpoint, apis = aws.url, None
        _log(f"no running 'make run' found: using an empty emulated AWS at {endpoint}")
    else:
        endpoint, apis = running
        _log(f"using the running stack's AWS endpoint {endpoint}")
    try:
        return _invoke(args.function, event, endpoint, apis, config)
    except TemplateError as exc:
        _log(f"make invoke: {exc}")
        return 2
    finally:
        if aws is not None:
            aws.stop()


def _served_at(template: Template, config: LocalConfig) -> dict[str, str]:
    """Where ``make run`` serves each API of the template: a function that builds a URL from
    its API (``WEBSOCKET_ENDPOINT``) gets that of a stack started later, as make run's own."""
    apis = dict.fromkeys(template.http_apis(), f"http://{config.host}:{config.http_port}")
    for api in template.websocket_apis():
        apis[api.logical_id] = f"ws://{config.host}:{config.ws_port}"
    return apis


def _invoke(
    function: str, event: dict[str, Any], endpoint: str, apis: dict[str, str] | None, config: LocalConfig
) -> int:
    def client(service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(account_id_endpoint_mode="disabled"),
        )

    template = Template.load(config.template_path, parameters=dict(config.parameters))
    functions = template.functions()
    if function not in functions:
        known = ", ".join(sorted(functions))
        _log(f"make invoke: no function {function!r} in template.yaml; there are: {known}")
        return 2
    provision(template, client, _served_at(template, config) if apis is None else apis)
    functions = template.functions()  # environment resolved against the provisioned resources
    inherited = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    base_env = (
        inherited
        | FAKE_CREDENTIALS
        | {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }
    )
    with FunctionRunner({function: functions[function]}, base_env, log=_log) as runner:
        try:
            result = runner.invoke(function, event, "make invoke")
        except FunctionError as exc:
            print(json.dumps({"errorType": exc.error_type, "errorMessage": exc.error_message}, indent=2))
            return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
