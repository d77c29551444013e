"""Cold-start init time of every function's handler module, against a boto3 baseline.

Each sample is a fresh ``.venv`` Python subprocess that times, with
``time.perf_counter``, only the work Lambda's init phase does for the handler: importing
the handler module (the function's environment variables set, ``PYTHONPATH`` = the
shared layer plus the function's folder). Interpreter start-up is not counted, for the
functions or for the baseline.

The baseline is what any Python Lambda that talks to DynamoDB pays at least:
``import boto3`` plus creating one DynamoDB client, in its own fresh subprocess.

Each function gets the environment template.yaml gives it once deployed: its references
(queue URLs, table names, the WebSocket API's endpoint that ``WEBSOCKET_ENDPOINT`` is built
from) resolved against resources created in moto's in-process mock, exactly as the tests'
``local.stack.InProcessStack`` does, with the APIs at their execute-api URLs.

The handlers create their boto3 clients lazily, on the first request, so the import
alone leaves out that client creation. A second figure, "init + client", adds the
creation of the function's DynamoDB client (through ``chatflow.adapters.aws``, exactly
as the first request does) for a like-for-like comparison with the baseline.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from local.emulated_aws import use_emulated_aws
from local.specs import FunctionSpec
from local.template import ROOT

PYTHON = ROOT / ".venv" / "bin" / "python"
LAYER = ROOT / "layers" / "shared" / "python"
REPEATS = 7
TARGET_RATIO = 1.5
REGION = "us-east-1"

# Runs in the fresh subprocess; prints one JSON object with the timings in ms.
_FUNCTION_PROBE = """
import importlib, json, sys, time
start = time.perf_counter()
importlib.import_module(sys.argv[1])
imported = time.perf_counter()
client_ms = None
if sys.argv[2] == "client":
    from chatflow.adapters import aws
    aws.dynamodb(sys.argv[3])
    client_ms = (time.perf_counter() - start) * 1000
print(json.dumps({"init_ms": (imported - start) * 1000, "client_ms": client_ms}))
"""

_BASELINE_PROBE = """
import json, sys, time
start = time.perf_counter()
import boto3
boto3.client("dynamodb", region_name=sys.argv[1])
print(json.dumps({"init_ms": (time.perf_counter() - start) * 1000, "client_ms": None}))
"""

# Fake credentials and no endpoint: nothing in a probe may reach a real account.
_BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


@dataclass(frozen=True)
class ColdStart:
    name: str
    init_ms: float
    client_ms: float | None
    samples: tuple[float, ...]

    def ratio(self, baseline: ColdStart) -> float:
        return self.init_ms / baseline.init_ms

    def client_ratio(self, baseline: ColdStart) -> float | None:
        return None if self.client_ms is None else self.client_ms / baseline.init_ms


@dataclass(frozen=True)
class ColdStartReport:
    baseline: ColdStart
    functions: tuple[ColdStart, ...]
    repeats: int

    @property
    def worst_ratio(self) -> float:
        return max(f.ratio(self.baseline) for f in self.functions)


def _probe(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, float | None]:
    # A minimal environment: no AWS_* or PYTHON* setting of the caller leaks in.
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(ROOT))}
    full_env |= _BASE_ENV | env
    out = subprocess.run(
        [str(PYTHON), "-c", *args], env=full_env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"cold-start probe failed: {out.stderr.strip()[-2000:]}")
    result: dict[str, float | None] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _series(name: str, args: list[str], env: dict[str, str], cwd: Path, repeats: int) -> ColdStart:
    _probe(args, env, cwd)  # first run writes the .pyc files (`make build` precompiles them too)
    runs = [_probe(args, env, cwd) for _ in range(repeats)]
    inits = [float(r["init_ms"] or 0.0) for r in runs]
    clients = [float(r["client_ms"]) for r in runs if r["client_ms"] is not None]
    return ColdStart(
        name=name,
        init_ms=statistics.median(inits),
        client_ms=statistics.median(clients) if clients else None,
        samples=tuple(round(v, 1) for v in inits),
    )


def deployed_functions() -> dict[str, FunctionSpec]:
    """Every function of template.yaml, its environment resolved as once deployed."""
    use_emulated_aws()  # before moto and boto3: nothing here may reach a real account
    from moto import mock_aws

    from local.stack import InProcessStack

    with mock_aws():
        stack = InProcessStack.create()
    return {logical_id: function.spec for logical_id, function in stack.functions.items()}


def measure(repeats: int = REPEATS) -> ColdStartReport:
    baseline = _series("baseline: import boto3 + 1 client", [_BASELINE_PROBE, REGION], {}, ROOT, repeats)
    results = []
    for logical_id, spec in deployed_functions().items():
        env = dict(spec.environment)
        env["PYTHONPATH"] = os.pathsep.join([str(LAYER), str(spec.code_dir)])
        # Only functions that use DynamoDB create a client on their first request: those whose
        # composition needs the region (``AwsSettings``; the others make no client or their own).
        source = (spec.code_dir / f"{spec.module.replace('.', '/')}.py").read_text(encoding="utf-8")
        mode = "client" if "AwsSettings" in source else "none"
        args = [_FUNCTION_PROBE, spec.module, mode, REGION]
        results.append(_series(logical_id, args, env, spec.code_dir, repeats))
    return ColdStartReport(baseline=baseline, functions=tuple(results), repeats=repeats)


def table(report: ColdStartReport) -> list[list[str]]:
    """Rows: name, median init ms, ratio, median init + client ms, its ratio."""
    base = report.baseline
    rows = [["baseline (import boto3 + 1 client)", f"{base.init_ms:.0f}", "1.00", "-", "-"]]
    for f in report.functions:
        client_ratio = f.client_ratio(base)
        rows.append(
            [
                f.name,
                f"{f.init_ms:.0f}",
                f"{f.ratio(base):.2f}",
                "-" if f.client_ms is None else f"{f.client_ms:.0f}",
                "-" if client_ratio is None else f"{client_ratio:.2f}",
            ]
        )
    return rows


def import_profile(function: str = "ChatsFunction", top: int = 12) -> list[tuple[str, float]]:
    """``python -X importtime`` of one handler: self time summed per top-level package, in ms.

    Self times never overlap, so the rows add up to the whole import (plus the
    ``-X importtime`` overhead itself); costliest first.
    """
    spec = deployed_functions()[function]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(ROOT)),
        "PYTHONPATH": os.pathsep.join([str(LAYER), str(spec.code_dir)]),
    }
    env |= _BASE_ENV | spec.environment
    out = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-c", f"import {spec.module}"],
        env=env,
        cwd=spec.code_dir,
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[str, float] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, _cumulative_us, name = line.removeprefix("import time:").split("|")
        module = name.strip()
        package = module if module.startswith("chatflow.") else module.split(".")[0]
        group = "Python standard library" if package in sys.stdlib_module_names else package
        group = _GROUPS.get(group, group)
        totals[group] = totals.get(group, 0.0) + int(self_us) / 1000
    return sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:top]


# Packages reported together: boto3's own dependencies, pydantic's core.
_GROUPS = {
    "botocore": "boto3 + botocore + s3transfer + urllib3",
    "boto3": "boto3 + botocore + s3transfer + urllib3",
    "s3transfer": "boto3 + botocore + s3transfer + urllib3",
    "urllib3": "boto3 + botocore + s3transfer + urllib3",
    "jmespath": "boto3 + botocore + s3transfer + urllib3",
    "dateutil": "boto3 + botocore + s3transfer + urllib3",
    "pydantic_core": "pydantic + pydantic_core",
    "pydantic": "pydantic + pydantic_core",
    "app": "app (the handler module itself)",
}


if __name__ == "__main__":
    report = measure()
    for row in table(report):
        print(" | ".join(row))
    sys.exit(0)
