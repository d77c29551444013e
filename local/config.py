"""Settings of the local stack (CONTRACT §6, §6a), from ``CHATFLOW_*`` environment variables."""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from local.template import ROOT, TEMPLATE_PATH, parse_template

PARAMETER_OVERRIDES = "CHATFLOW_PARAMETER_OVERRIDES"
_EXAMPLE = f'{PARAMETER_OVERRIDES}="SmsRatePerSecond=2 AuthMode=phone"'
_HOW = (
    f"write {_EXAMPLE}: template parameters as Key=Value, separated by spaces; quote a value "
    'that has spaces (Key="a b")'
)
# CloudFormation parameter names are alphanumeric.
_NAME = re.compile(r"[A-Za-z0-9]+")
# sam deploy's long form, also accepted: ParameterKey=Name,ParameterValue=value
_LONG_FORM = re.compile(r"ParameterKey=([^,=]*),ParameterValue=(.*)", re.DOTALL)


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


def parse_parameter_overrides(text: str) -> dict[str, str]:
    """``Key=Value Key2=Value2`` as ``sam deploy --parameter-overrides`` reads it.

    Pairs are separated by white space; a value with spaces is quoted (``Key="a b"`` or
    ``'a b'``) or escaped (``a\\ b``), as in a shell; ``ParameterKey=K,ParameterValue=V`` is
    the same as ``K=V``; an empty value (``Key=``) is a value; the last of a repeated key wins.
    """
    try:
        tokens = shlex.split(text)
    except ValueError as exc:  # an unbalanced quote
        raise ConfigError(f"{PARAMETER_OVERRIDES}={text!r}: {exc}; {_HOW}") from None
    parameters: dict[str, str] = {}
    for token in tokens:
        if long_form := _LONG_FORM.fullmatch(token):
            name, value = long_form.group(1), long_form.group(2)
        else:
            name, equals, value = token.partition("=")
            if not equals:
                raise ConfigError(f"{PARAMETER_OVERRIDES}: {token!r} is not Key=Value; {_HOW}")
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"{PARAMETER_OVERRIDES}: {token!r} does not start with a parameter name "
                f"(letters and digits); {_HOW}"
            )
        parameters[name] = value
    return parameters


def check_parameters(parameters: Mapping[str, str], template_path: Path) -> None:
    """Refuse what CloudFormation would refuse: a parameter the template does not declare, or
    a value outside its ``AllowedValues``, ``AllowedPattern``, length or number bounds."""
    if not parameters:
        return
    document = parse_template(template_path.read_text(encoding="utf-8"))
    declared: dict[str, dict[str, Any]] = dict(document.get("Parameters") or {})
    for name, value in parameters.items():
        if name not in declared:
            raise ConfigError(f"{PARAMETER_OVERRIDES}: {_unknown(name, declared, template_path)}")
        problem = _breaks_constraints(value, declared[name] or {})
        if problem:
            raise ConfigError(f"{PARAMETER_OVERRIDES}: {name}={value!r} {problem}")


def _unknown(name: str, declared: Mapping[str, object], template_path: Path) -> str:
    where = template_path.name
    if not declared:
        return f"{where} declares no parameters, so {name!r} cannot be set"
    close = difflib.get_close_matches(name, list(declared), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{where} has no parameter {name!r}{hint}; its parameters: {', '.join(sorted(declared))}"


def _breaks_constraints(value: str, spec: Mapping[str, Any]) -> str | None:
    """What is wrong with ``value`` for a parameter declared as ``spec``; None when it fits."""
    allowed = [str(v) for v in spec.get("AllowedValues") or []]
    if allowed and value not in allowed:
        return f"is not one of {', '.join(allowed)}"
    if str(spec.get("Type", "String")) == "Number":
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"is below its MinValue {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"is above its MaxValue {spec['MaxValue']}"
        return None
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"is shorter than its MinLength {spec['MinLength']}"
    if "MaxLength" in spec and len(value) > int(spec["MaxLength"]):
        return f"is longer than its MaxLength {spec['MaxLength']}"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), value) is None:
        return f"does not match its AllowedPattern {pattern}"
    return None


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
    # Template parameters to override (CHATFLOW_PARAMETER_OVERRIDES; tests shrink delays this way).
    parameters: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], *, fresh: bool = False, template_path: Path = TEMPLATE_PATH
    ) -> LocalConfig:
        operators = ",".join(p.strip() for p in environ.get("CHATFLOW_OPERATORS", "").split(",") if p.strip())
        parameters = parse_parameter_overrides(environ.get(PARAMETER_OVERRIDES, ""))
        check_parameters(parameters, template_path)
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
            template_path=template_path,
            parameters=parameters,
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
