"""``make run``: the whole stack on this machine, until Ctrl-C.

``make run ARGS=--fresh`` forgets the saved state and starts clean.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import sys
import threading
from types import FrameType

from local.config import ConfigError, LocalConfig
from local.stack_server import StackServer
from local.template import TemplateError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__)
    parser.add_argument("--fresh", action="store_true", help="forget the saved state and start clean")
    return parser.parse_args(argv)


# Each port make run binds: what listens there, and the variable that moves it.
PORTS = (
    ("http_port", "the HTTP API and the web client", "CHATFLOW_HTTP_PORT"),
    ("ws_port", "the WebSocket API", "CHATFLOW_WS_PORT"),
    ("provider_port", "the fake SMS provider", "CHATFLOW_PROVIDER_PORT"),
    ("aws_port", "the emulated AWS endpoint", "CHATFLOW_AWS_PORT"),
)


def busy_port(config: LocalConfig) -> str | None:
    """Why the stack cannot have its ports (one in use, or two the same), naming the port, what
    wanted it and the variable that moves it; None when every port is free (0: any free one)."""
    wanted: dict[int, str] = {}
    for attribute, service, variable in PORTS:
        port = int(getattr(config, attribute))
        if port == 0:
            continue
        if port in wanted:
            return f"{variable} and {wanted[port]} are both {port}: give each service a port of its own"
        wanted[port] = variable
        # The same options as the servers' own sockets, so what passes here binds there.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((config.host, port))
            except OSError as exc:
                return (
                    f"port {port} ({service}) is in use on {config.host} ({exc.strerror or exc}; "
                    f"another 'make run'?): stop what uses it, or move this one: "
                    f"{variable}={port + 100} make run"
                )
    return None


def _banner(server: StackServer) -> str:
    outputs = server.outputs
    config = server.config
    lines = [
        "",
        "ChatFlow is running locally (Ctrl-C stops it; the state is kept for the next start).",
        f"  HTTP API        {outputs.get('HttpApiUrl', '-')}",
        f"  WebSocket API   {outputs.get('WebSocketUrl', '(none in template.yaml yet)')}",
        f"  SMS provider    {outputs['SmsProviderUrl']}   (outbox: GET /messages?to=...)",
        f"  AWS endpoint    {outputs['AwsEndpointUrl']}   (AWS_ENDPOINT_URL for the AWS CLI / boto3)",
        f"  outputs         {config.outputs_file}",
        f"  state           {config.state_file}   (make run ARGS=--fresh starts clean)",
    ]
    if config.parameters:
        overrides = " ".join(f"{name}={shlex.quote(value)}" for name, value in config.parameters.items())
        lines.append(f"  parameters      {overrides}   (CHATFLOW_PARAMETER_OVERRIDES)")
    lines += [
        "",
        f"  try: curl {outputs.get('HttpApiUrl', '')}/v1/health",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    try:
        config = LocalConfig.from_env(os.environ, fresh=args.fresh)
    except ConfigError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    busy = busy_port(config)
    if busy is not None:
        print(f"make run: {busy}", file=sys.stderr)
        return 2
    server = StackServer(config)
    try:
        server.start()
    except (TemplateError, ConfigError) as exc:
        print(f"make run: {exc}", file=sys.stderr)
        server.stop()
        return 2
    except OSError as exc:
        # A port taken between the check above and the bind: the port is not in the error.
        ports = ", ".join(f"{variable}={getattr(config, attribute)}" for attribute, _, variable in PORTS)
        print(
            f"make run: {exc} (a port taken by another program? these are the ports: {ports})",
            file=sys.stderr,
        )
        server.stop()
        return 2
    print(_banner(server), flush=True)
    stopped = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    while not stopped.wait(0.5):
        pass
    print("stopping: finishing deliveries in flight and saving the state...", flush=True)
    server.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
