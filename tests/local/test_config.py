"""The local stack's settings from the environment; CHATFLOW_PARAMETER_OVERRIDES (CONTRACT §6a)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from local import serve
from local.config import ConfigError, LocalConfig, parse_parameter_overrides
from local.stack_server import StackServer
from local.template import TEMPLATE_PATH

PROBE_TEMPLATE = Path(__file__).parent / "probe" / "template.yaml"


def overrides(text: str, template: Path = TEMPLATE_PATH) -> dict[str, str]:
    """The parameters ``make run`` gets from ``CHATFLOW_PARAMETER_OVERRIDES=text``."""
    config = LocalConfig.from_env({"CHATFLOW_PARAMETER_OVERRIDES": text}, template_path=template)
    return dict(config.parameters)


def test_without_overrides_no_parameter_is_set() -> None:
    # Given no CHATFLOW_PARAMETER_OVERRIDES, When the settings are read
    config = LocalConfig.from_env({})

    # Then the template's defaults stay
    assert dict(config.parameters) == {}


def test_key_value_pairs_separated_by_spaces_set_those_parameters() -> None:
    # Given two pairs, as sam deploy --parameter-overrides takes them
    text = "SmsRatePerSecond=2 AuthMode=phone"

    # When the settings are read, Then both are set, as strings
    assert overrides(text) == {"SmsRatePerSecond": "2", "AuthMode": "phone"}


def test_sam_deploys_long_form_is_accepted_too() -> None:
    assert overrides("ParameterKey=SmsRatePerSecond,ParameterValue=2 LogLevel=DEBUG") == {
        "SmsRatePerSecond": "2",
        "LogLevel": "DEBUG",
    }


def test_a_quoted_value_keeps_its_spaces_and_an_equals_sign_stays_in_the_value() -> None:
    assert parse_parameter_overrides("A=\"x y\" B='p q' C=a\\ b D=k=v") == {
        "A": "x y",
        "B": "p q",
        "C": "a b",
        "D": "k=v",
    }


def test_an_empty_value_is_a_value_and_the_last_of_a_repeated_key_wins() -> None:
    assert overrides("OperatorPhoneNumbers= SmsRatePerSecond=2 SmsRatePerSecond=3") == {
        "OperatorPhoneNumbers": "",
        "SmsRatePerSecond": "3",
    }


def test_a_comma_separated_value_is_one_value() -> None:
    assert overrides("OperatorPhoneNumbers=+14155550100,+14155550101") == {
        "OperatorPhoneNumbers": "+14155550100,+14155550101"
    }


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("SmsRatePerSecond", "'SmsRatePerSecond' is not Key=Value"),
        ("SmsRatePerSecond:2", "'SmsRatePerSecond:2' is not Key=Value"),
        ("=2", "'=2' does not start with a parameter name"),
        ("Sms-Rate=2", "'Sms-Rate=2' does not start with a parameter name"),
        ('AuthMode="phone', "No closing quotation"),
    ],
)
def test_bad_syntax_says_what_is_wrong_and_what_to_write(text: str, problem: str) -> None:
    # Given a value that is not Key=Value pairs, When the settings are read
    with pytest.raises(ConfigError) as raised:
        overrides(text)

    # Then the error names the variable, the problem and an example to copy
    message = str(raised.value)
    assert message.startswith("CHATFLOW_PARAMETER_OVERRIDES")
    assert problem in message
    assert 'CHATFLOW_PARAMETER_OVERRIDES="SmsRatePerSecond=2 AuthMode=phone"' in message


def test_an_unknown_parameter_is_refused_naming_it_and_the_closest_known_one() -> None:
    # Given a misspelt parameter name, When the settings are read
    with pytest.raises(ConfigError) as raised:
        overrides("SmsRatePerSeconds=2")

    # Then the error names it, suggests the parameter meant and lists the template's
    message = str(raised.value)
    assert "template.yaml has no parameter 'SmsRatePerSeconds'" in message
    assert "did you mean SmsRatePerSecond?" in message
    assert "AuthMode" in message


def test_a_template_without_parameters_refuses_every_override() -> None:
    with pytest.raises(ConfigError, match="declares no parameters, so 'Anything' cannot be set"):
        overrides("Anything=1", template=PROBE_TEMPLATE)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("AuthMode=password", "AuthMode='password' is not one of otp, phone"),
        ("SmsRatePerSecond=fast", "SmsRatePerSecond='fast' is not a number"),
        ("SmsRatePerSecond=0", "SmsRatePerSecond='0' is below its MinValue 1"),
        ("SmsMaxAttempts=31", "SmsMaxAttempts='31' is above its MaxValue 30"),
        ("SmsProviderBaseUrl=ftp://provider", "does not match its AllowedPattern ^https?://.+"),
    ],
)
def test_a_value_the_template_does_not_allow_is_refused_as_cloudformation_would(
    text: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        overrides(text)
    assert problem in str(raised.value)


def test_make_run_stops_with_the_error_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a bad override in make run's environment (and a bad port, read after it: were the
    # override wrongly accepted, make run stops on the port instead of serving for good)
    monkeypatch.setenv("CHATFLOW_PARAMETER_OVERRIDES", "SmsRatePerSecond")
    monkeypatch.setenv("CHATFLOW_AWS_PORT", "not-a-port")

    # When make run starts
    code = serve.main([])

    # Then it exits with code 2 and the explanation, having started nothing
    assert code == 2
    expected = "make run: CHATFLOW_PARAMETER_OVERRIDES: 'SmsRatePerSecond' is not Key=Value"
    assert expected in capsys.readouterr().err


def test_a_stack_given_parameters_in_code_refuses_a_misspelt_one(tmp_path: Path) -> None:
    # Given settings built in code (as tests and benchmarks do), with a misspelt parameter
    config = replace(
        LocalConfig(http_port=0, ws_port=0, provider_port=0, aws_port=0, state_dir=tmp_path, persist=False),
        parameters={"SmsRatePerSecnd": "5"},
    )

    # When the stack starts
    server = StackServer(config, log=lambda line: None)
    with pytest.raises(ConfigError) as refused:
        server.start()
    server.stop()

    # Then it refuses, naming the parameter and the one meant, instead of ignoring it
    assert "SmsRatePerSecnd" in str(refused.value)
    assert "SmsRatePerSecond" in str(refused.value)
