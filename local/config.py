"""Settings of the local stack (CONTRACT §6), from ``CHATFLOW_*`` environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from local.template import ROOT, TEMPLATE_PATH


class ConfigError(ValueError):
    """A ``CHATFLOW_*`` variable has a value the local stack cannot use; the message says which."""


def _port(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, str(default))
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number (1-65535)") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}={raw!r} is not a port number (1-65535)")
    return port


@dataclass(frozen=True)
class LocalConfig:
    host: str = "127.0.0.1"
    http_port: int = 3000
    ws_port: int = 3001
    provider_port: int = 3002
    aws_port: int = 4566
    auth_mode: str = "otp"
    operators: str = ""
    state_dir: Path = ROOT / ".local"
    fresh: bool = False
    persist: bool = True
    template_path: Path = TEMPLATE_PATH
    static_dir: Path | None = ROOT / "web"
    provider_environ: Mapping[str, str] = field(default_factory=dict)
    # Template parameters to override (tests shrink delays and limits this way).
    parameters: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, fresh: bool = False) -> LocalConfig:
        operators = ",".join(p.strip() for p in environ.get("CHATFLOW_OPERATORS", "").split(",") if p.strip())
        return cls(
            http_port=_port(environ, "CHATFLOW_HTTP_PORT", 3000),
            ws_port=_port(environ, "CHATFLOW_WS_PORT", 3001),
            provider_port=_port(environ, "CHATFLOW_PROVIDER_PORT", 3002),
            aws_port=_port(environ, "CHATFLOW_AWS_PORT", 4566),
            auth_mode=environ.get("CHATFLOW_AUTH_MODE", "otp").strip() or "otp",
            operators=operators,
            state_dir=Path(environ.get("CHATFLOW_STATE_DIR", str(ROOT / ".local"))).resolve(),
            fresh=fresh,
            provider_environ={k: v for k, v in environ.items() if k.startswith("CHATFLOW_FAKE_")},
        )

    @property
    def state_file(self) -> Path:
        return self.state_dir / "aws-state.pickle"

    @property
    def outputs_file(self) -> Path:
        return self.state_dir / "outputs.json"

    @property
    def endpoints_file(self) -> Path:
        """The local URL of each API of the template, for ``make invoke``."""
        return self.state_dir / "api-endpoints.json"
