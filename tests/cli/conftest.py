"""Running ``chatflow`` in-process, against the stub campaign API or the real local stack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from chatflow_cli.main import app
from tests.cli.stub_api import StubApi


def chatflow(state_dir: Path, *args: str, input: str | None = None) -> Result:
    """``chatflow ARGS`` with ``state_dir`` as the state directory, wide output, no CHATFLOW_PHONE."""
    env = {"CHATFLOW_STATE_DIR": str(state_dir), "CHATFLOW_PHONE": None, "COLUMNS": "200"}
    result = CliRunner().invoke(app, list(args), env=env, input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"chatflow {' '.join(args)} raised instead of failing cleanly") from (
            result.exception
        )
    return result


def write_outputs(state_dir: Path, outputs: dict[str, str]) -> Path:
    path = state_dir / "outputs.json"
    path.write_text(json.dumps(outputs), encoding="utf-8")
    return path


@pytest.fixture
def stub() -> Iterator[StubApi]:
    api = StubApi().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def stub_state(tmp_path: Path, stub: StubApi) -> Path:
    """A state directory whose outputs.json points at the stub (a deployed-like stack: no provider)."""
    write_outputs(tmp_path, {"HttpApiUrl": stub.url})
    return tmp_path
