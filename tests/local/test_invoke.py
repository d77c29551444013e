"""``make invoke FN=... EVENT=...``: one function, once, on a sample event, with no running stack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local import invoke
from local.template import ROOT


@pytest.fixture(autouse=True)
def no_running_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A state directory with no outputs.json: invoke starts its own empty emulated AWS."""
    monkeypatch.setenv("CHATFLOW_STATE_DIR", str(tmp_path))


def test_a_function_runs_once_on_a_sample_event_and_its_result_is_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the health sample event, When it is invoked on the API meta function
    code = invoke.main(["ApiMetaFunction", str(ROOT / "events" / "api_meta_health.json")])

    # Then the handler's result is printed as JSON and the exit code says it worked
    out = capsys.readouterr()
    assert code == 0
    result = json.loads(out.out)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"status": "ok"}
    assert "ApiMetaFunction  make invoke" in out.err


def test_a_function_that_reads_tables_runs_against_the_provisioned_resources(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the list-chats sample event, When the chats function handles it on empty tables
    code = invoke.main(["ChatsFunction", str(ROOT / "events" / "chats_list_chats.json")])

    # Then it answers an empty page (the tables and the cursor secret exist)
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"items": [], "nextCursor": None}


def test_an_unknown_function_is_refused_with_the_list_of_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = invoke.main(["NoSuchFunction", str(ROOT / "events" / "api_meta_health.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert "no function 'NoSuchFunction'" in err
    assert "ChatsFunction" in err


def test_an_unreadable_event_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    code = invoke.main(["ChatsFunction", str(broken)])
    assert code == 2
    assert "cannot read the event" in capsys.readouterr().err


def test_a_real_time_function_gets_the_websocket_apis_local_url_with_no_stack_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given no running stack, so no served WebSocket API to read the URL from
    # When the $connect sample event is invoked on the real-time connections function
    event = ROOT / "events" / "realtime_connections_connect.json"
    code = invoke.main(["RealtimeConnectionsFunction", str(event)])

    # Then its settings validate (WEBSOCKET_ENDPOINT is where make run serves the API) and it connects
    out = capsys.readouterr()
    assert code == 0, out.out
    assert json.loads(out.out) == {"statusCode": 200}


def test_a_parameter_override_is_checked_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an override of a parameter template.yaml does not have
    monkeypatch.setenv("CHATFLOW_PARAMETER_OVERRIDES", "NoSuchParameter=1")

    # When a function is invoked, Then it is refused with the reason
    code = invoke.main(["ApiMetaFunction", str(ROOT / "events" / "api_meta_health.json")])
    assert code == 2
    assert "template.yaml has no parameter 'NoSuchParameter'" in capsys.readouterr().err


def test_a_parameter_override_reaches_the_function(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given AuthMode=phone as an override (the template's default is otp)
    monkeypatch.setenv("CHATFLOW_PARAMETER_OVERRIDES", "AuthMode=phone")

    # When a verification is asked for
    code = invoke.main(["IdentityFunction", str(ROOT / "events" / "identity_start_verification.json")])

    # Then the function answers as in phone mode: no code is needed
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["statusCode"] == 409
    assert json.loads(result["body"])["error"]["code"] == "code_not_required"
