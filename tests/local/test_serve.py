"""``make run`` when a port it needs is taken: it says which port, for what, and how to move it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from local import serve


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        yield int(other.getsockname()[1])


def _free_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for _, _, variable in serve.PORTS:
        monkeypatch.setenv(variable, "0")
    monkeypatch.setenv("CHATFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("CHATFLOW_PARAMETER_OVERRIDES", raising=False)


@pytest.mark.parametrize(
    ("variable", "service"),
    [
        ("CHATFLOW_HTTP_PORT", "the HTTP API"),
        ("CHATFLOW_WS_PORT", "the WebSocket API"),
        ("CHATFLOW_PROVIDER_PORT", "the fake SMS provider"),
        ("CHATFLOW_AWS_PORT", "the emulated AWS endpoint"),
    ],
)
def test_a_busy_port_is_named_with_its_service_and_the_variable_that_moves_it(
    variable: str,
    service: str,
    taken_port: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given another program listening on the port one service of the stack wants
    _free_ports(monkeypatch, tmp_path)
    monkeypatch.setenv(variable, str(taken_port))

    # When make run starts
    code = serve.main([])

    # Then it stops at once with code 2, naming the port, the service and how to move it
    error = capsys.readouterr().err
    assert code == 2
    assert f"port {taken_port} ({service}" in error
    assert f"{variable}={taken_port + 100} make run" in error
    # and it started nothing: no outputs were written
    assert not (tmp_path / "outputs.json").exists()


def test_two_services_given_the_same_port_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the WebSocket API set to the HTTP API's port (a free one)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as finder:
        finder.bind(("127.0.0.1", 0))
        port = int(finder.getsockname()[1])
    _free_ports(monkeypatch, tmp_path)
    monkeypatch.setenv("CHATFLOW_HTTP_PORT", str(port))
    monkeypatch.setenv("CHATFLOW_WS_PORT", str(port))

    # When make run starts, Then it names both variables instead of failing on a bind
    assert serve.main([]) == 2
    assert f"CHATFLOW_WS_PORT and CHATFLOW_HTTP_PORT are both {port}" in capsys.readouterr().err
