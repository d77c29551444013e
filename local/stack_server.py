"""The whole application on this machine: what ``make run`` starts (CONTRACT §6).

- emulated AWS (a moto server) with every resource of the template,
- the HTTP API and the WebSocket API dispatching to the template's functions, each
  function in worker processes of its own,
- the event sources (SQS, DynamoDB streams, S3 notifications, EventBridge rules),
- the fake SMS provider,
- state saved under the state directory and restored on the next start.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

from local.aws_server import EmulatedAws
from local.collector import HeapKeeper
from local.config import LocalConfig, check_parameters
from local.direct_aws import DirectClients
from local.edge import HttpEdge, WebSocketEdge
from local.fake_provider import FakeProviderSettings, FakeSmsProvider
from local.functions import FunctionRunner
from local.provision import Provisioned, provision
from local.sources import AsyncSource, Source, SqsSource, StreamSource
from local.specs import REGION
from local.template import Template, TemplateError, parse_template

Log = Callable[[str], None]
SNAPSHOT_SECONDS = 2.0
# A snapshot's fork stops every request and its child's pickling takes a core: it waits for a
# moment with no request for this long, or at most SNAPSHOT_MAX_WAIT_SECONDS under constant load.
SNAPSHOT_QUIET_SECONDS = 0.25
SNAPSHOT_MAX_WAIT_SECONDS = 10.0
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}
# Beside outputs.json: the template parameters the running stack resolved its functions with
# (the fake provider's URL, the auth mode...), so that ``make invoke`` runs a function as it runs.
PARAMETERS_FILE = "parameters.json"
# Signs the fake provider's receipts when the template has no SMS provider secret.
RECEIPTS_SECRET = "chatflow-local-receipts-secret"  # noqa: S105 - local only, not a credential


def wait_for_quiet(
    last_activity: Callable[[], float],
    wait: Callable[[float], bool],
    quiet: float,
    limit: float,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Return once nothing has been active for ``quiet`` seconds (``last_activity``: the
    ``clock`` time of the latest activity), or ``limit`` seconds from now at the latest: True;
    False as soon as ``wait(seconds)`` (a stop event's ``wait``) answers True."""
    deadline = clock() + limit
    while True:
        now = clock()
        idle = now - last_activity()
        if idle >= quiet or now >= deadline:
            return True
        if wait(min(quiet - idle, deadline - now)):
            return False


def _stop_together(servers: list[HttpEdge | WebSocketEdge]) -> None:
    """Stop the servers at the same time; returns when every one has stopped."""
    threads = [threading.Thread(target=server.stop, name=f"stop-{i}") for i, server in enumerate(servers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _print(line: str) -> None:
    print(line, flush=True)


class StackServer:
    def __init__(self, config: LocalConfig, log: Log = _print) -> None:
        self.config = config
        self.log = log
        self.outputs: dict[str, str] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sources: list[Source] = []
        self._checkpoints: dict[str, dict[str, str]] = {}
        self._saved_version: tuple[int, str] | None = None
        self.aws: EmulatedAws | None = None
        self.runner: FunctionRunner | None = None
        self.http: HttpEdge | None = None
        self.websocket: WebSocketEdge | None = None
        self.provider: FakeSmsProvider | None = None
        self.template: Template | None = None
        self.provisioned: Provisioned | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> StackServer:
        config = self.config
        # Overrides given in code (tests, benchmarks) are checked as the environment's are:
        # a misspelt or out-of-range parameter is an error, never silently dropped.
        check_parameters(config.parameters, config.template_path)
        EmulatedAws.reset()
        extra = self._restore()
        self._checkpoints = dict(extra.get("checkpoints") or {})
        self.aws = EmulatedAws(config.host, config.aws_port)
        self.aws.start()
        self.provider = FakeSmsProvider(
            FakeProviderSettings.from_env(config.provider_environ),
            host=config.host,
            port=config.provider_port,
            log=self.log,
        )
        self.provider.start()
        parameters = self._parameters()
        template = Template.load(config.template_path, parameters=parameters)
        self.template = template
        ws_specs = template.websocket_apis()
        if len(ws_specs) > 1:
            raise TemplateError("the local stack serves one WebSocket API; the template has several")
        # Both ports are bound here (the URLs go into the template's resources), served later.
        if ws_specs:
            self.websocket = WebSocketEdge(
                ws_specs[0], self._invoke, host=config.host, port=config.ws_port, log=self.log
            )
        self.http = HttpEdge(
            template.http_routes(),
            self._invoke,
            api_id=next(iter(template.http_apis()), "httpapi").lower(),
            host=config.host,
            port=config.http_port,
            cors=template.http_cors(),
            log=self.log,
        )
        if config.static_dir and config.static_dir.is_dir():
            self.http.serve_web_client(
                config.static_dir,
                ws_port=self.websocket.port if self.websocket else None,
                ws_stage=ws_specs[0].stage if ws_specs else "",
            )
        endpoints = dict.fromkeys(template.http_apis(), self.http.url)
        if self.websocket is not None:
            endpoints[ws_specs[0].logical_id] = self.websocket.url
            self.websocket.start()

        self.provisioned = provision(template, self.client, endpoints)
        self.runner = FunctionRunner(template.functions(), self._function_env(), log=self.log)
        webhook_secret = self._webhook_secret(template)
        self.provider.configure_receipts(f"{self.http.url}/v1/sms/receipts", webhook_secret)
        self.provider.configure_inbound(f"{self.http.url}/v1/sms/inbound", webhook_secret)
        self._start_sources(template, self.provisioned)
        self._start_thread("snapshots", self._snapshots)
        aws = self.aws
        self._start_thread("heap", HeapKeeper(lambda: aws.last_request_at).run, self._stop)
        self.outputs = template.outputs() | {
            "AwsEndpointUrl": self.aws.url,
            "SmsProviderUrl": self.provider.url,
        }
        config.state_dir.mkdir(parents=True, exist_ok=True)
        config.outputs_file.write_text(json.dumps(self.outputs, indent=2) + "\n", encoding="utf-8")
        config.endpoints_file.write_text(json.dumps(endpoints, indent=2) + "\n", encoding="utf-8")
        (config.state_dir / PARAMETERS_FILE).write_text(
            json.dumps(parameters, indent=2) + "\n", encoding="utf-8"
        )
        self.http.start()  # last: GET /v1/health answers once everything above is ready
        return self

    def stop(self) -> None:
        """Stop accepting work, let deliveries in flight finish, save the state, stop everything."""
        self._stop.set()
        for source in self._sources:
            if isinstance(source, StreamSource):
                source.stopping.set()
        if self.aws is not None:
            self.aws.changes.bump()
        # Both APIs stop taking requests at the same time (each stop takes uvicorn 0.1 s).
        _stop_together([server for server in (self.http, self.websocket) if server is not None])
        for thread in self._threads:
            thread.join(timeout=15)
        for source in self._sources:
            source.close()
        if self.provider is not None:
            self.provider.stop()
        self.save()
        if self.runner is not None:
            self.runner.close()
        if self.aws is not None:
            self.aws.stop()
            EmulatedAws.reset()

    def __enter__(self) -> StackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- AWS ------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A boto3 client of emulated AWS (for the stack itself and for tests)."""
        assert self.aws is not None
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.aws.url,
            region_name=REGION,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(account_id_endpoint_mode="disabled", retries={"max_attempts": 2}),
        )

    def _function_env(self) -> dict[str, str]:
        assert self.aws is not None
        inherited = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL") if k in os.environ}
        return (
            inherited
            | FAKE_CREDENTIALS
            | {
                "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ENDPOINT_URL": self.aws.url,
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            }
        )

    def _parameters(self) -> dict[str, str]:
        declared = self._declared_parameters()
        assert self.provider is not None
        wanted = {
            "AuthMode": self.config.auth_mode,
            "OperatorPhoneNumbers": self.config.operators,
            "SmsProviderBaseUrl": self.provider.url,
        }
        parameters: dict[str, str] = {}
        for name, value in (wanted | dict(self.config.parameters)).items():
            if name not in declared:
                continue
            allowed = [str(v) for v in declared[name].get("AllowedValues") or []]
            if allowed and value not in allowed:
                self.log(
                    f"warning: {name}={value!r} is not supported by this template ({', '.join(allowed)}); "
                    f"using {declared[name].get('Default')!r}"
                )
                continue
            parameters[name] = value
        return parameters

    def _declared_parameters(self) -> dict[str, dict[str, Any]]:
        document = parse_template(self.config.template_path.read_text(encoding="utf-8"))
        return dict(document.get("Parameters") or {})

    def _webhook_secret(self, template: Template) -> str:
        """The secret the provider signs receipts with: the template's SMS provider secret."""
        arn = template.outputs().get("SmsProviderSecretArn")
        if not arn:
            return RECEIPTS_SECRET
        value = self.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
        return str(json.loads(value)["webhookSecret"])

    def _invoke(self, function: str, event: dict[str, Any], trigger: str) -> Any:
        if self.runner is None:
            raise RuntimeError("the stack is still starting")
        return self.runner.invoke(function, event, trigger)

    # ---- event sources ----------------------------------------------------------------------

    def _start_sources(self, template: Template, provisioned: Provisioned) -> None:
        assert self.aws is not None
        # The pollers read queues and streams from moto's models directly (local.direct_aws):
        # on AWS they are Lambda's own machinery, not clients of the public API.
        poller_client = DirectClients(self.aws.exclusive(), self.client)
        for mapping in template.event_source_mappings():
            if not mapping.enabled:
                continue
            if mapping.kind == "sqs":
                queue_url = provisioned.queue_urls[mapping.source_arn]
                self._sources.append(SqsSource(mapping, queue_url, poller_client, self._invoke))
            else:
                table = provisioned.stream_tables.get(mapping.source_arn, mapping.source_arn)
                checkpoints = self._checkpoints.setdefault(f"{mapping.logical_id}:{table}", {})
                self._sources.append(StreamSource(mapping, poller_client, self._invoke, checkpoints))
        for delivery in provisioned.deliveries:
            dead_letter = template.function_dead_letter_arn(delivery.function)
            self._sources.append(AsyncSource(delivery, poller_client, self._invoke, dead_letter))
        assert self.aws is not None
        changes = self.aws.changes
        for source in self._sources:
            self._start_thread(source.name, source.run, self._stop, changes.wait, changes.of)

    def _start_thread(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    # ---- state ------------------------------------------------------------------------------

    def _restore(self) -> dict[str, Any]:
        config = self.config
        if config.fresh and config.state_file.exists():
            config.state_file.unlink()
            self.log(f"fresh start: removed {config.state_file}")
        if not config.persist or not config.state_file.exists():
            return {}
        try:
            extra = EmulatedAws.load(config.state_file)
        except Exception as exc:
            aside = config.state_file.with_suffix(f".unreadable-{int(time.time())}")
            shutil.move(config.state_file, aside)
            self.log(
                f"warning: could not read the saved state ({exc}); starting clean, old file kept as {aside}"
            )
            return {}
        self.log(f"state restored from {config.state_file}")
        return extra

    def save(self, *, in_background: bool = False) -> None:
        if not self.config.persist or self.aws is None:
            return
        checkpoints = self._checkpoints_now()
        version = self._version(checkpoints)
        if version == self._saved_version:
            return
        self.aws.save(self.config.state_file, {"checkpoints": checkpoints}, in_background=in_background)
        self._saved_version = version

    def _checkpoints_now(self) -> dict[str, dict[str, str]]:
        return {name: dict(positions) for name, positions in list(self._checkpoints.items())}

    def _version(self, checkpoints: dict[str, dict[str, str]]) -> tuple[int, str]:
        assert self.aws is not None
        return self.aws.changes.generation, json.dumps(checkpoints, sort_keys=True)

    def _snapshots(self) -> None:
        interval = SNAPSHOT_SECONDS
        aws = self.aws
        if not self.config.persist or aws is None:
            return
        while not self._stop.wait(interval):
            if self._version(self._checkpoints_now()) == self._saved_version:
                continue
            # Something to save: at a moment without requests, so that none waits for the fork
            # or shares the cores with the child's pickling (the real-time benchmark's slowest
            # frames came during snapshots); under constant load, every 10 s or so.
            quiet = wait_for_quiet(
                lambda: aws.last_request_at,
                self._stop.wait,
                quiet=SNAPSHOT_QUIET_SECONDS,
                limit=SNAPSHOT_MAX_WAIT_SECONDS,
            )
            if not quiet:
                return  # stopping: the stop saves
            started = time.perf_counter()
            try:
                self.save(in_background=True)
            except Exception as exc:  # keep serving; the next snapshot may succeed
                self.log(f"warning: saving the state failed: {type(exc).__name__}: {exc}")
            # A big state takes long to save: save less often rather than stall requests.
            interval = max(SNAPSHOT_SECONDS, 10 * (time.perf_counter() - started))
