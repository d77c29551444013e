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


def _event_file(tmp_path: Path, event: dict[str, object]) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    return str(path)


def test_records_the_function_reports_as_failed_make_the_invocation_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch of the chat activity sample's record and a copy whose message has no text
    event = json.loads((ROOT / "events" / "chat_activity_message_insert.json").read_text())
    broken = json.loads(json.dumps(event["Records"][0]))
    broken["eventID"] = "broken-record"
    broken["dynamodb"]["SequenceNumber"] = "4421584500000000017450439093"
    del broken["dynamodb"]["NewImage"]["text"]
    event["Records"].append(broken)

    # When it is invoked
    code = invoke.main(["ChatActivityFunction", _event_file(tmp_path, event)])

    # Then the result names the failed record, the exit code is 1 and the log does not say ok
    out = capsys.readouterr()
    assert json.loads(out.out) == {"batchItemFailures": [{"itemIdentifier": "4421584500000000017450439093"}]}
    assert code == 1
    summary = [
        line for line in out.err.splitlines() if line.startswith("ChatActivityFunction  make invoke  ")
    ]
    assert len(summary) == 1
    assert "failed: failed records (batchItemFailures): 4421584500000000017450439093" in summary[0]
    assert not summary[0].split("  (cold start")[0].endswith("ok")


def test_a_function_that_raises_makes_the_invocation_fail_with_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a stream batch whose only record cannot be decoded, When it is invoked
    event = json.loads((ROOT / "events" / "chat_activity_message_insert.json").read_text())
    del event["Records"][0]["dynamodb"]["NewImage"]["text"]
    code = invoke.main(["ChatActivityFunction", _event_file(tmp_path, event)])

    # Then Lambda's error is printed, the exit code is 1 and the summary says it failed
    out = capsys.readouterr()
    assert code == 1
    assert json.loads(out.out)["errorType"] == "BatchProcessingError"
    assert "ChatActivityFunction  make invoke  " in out.err
    assert "failed: BatchProcessingError" in out.err


def test_a_client_error_answer_is_the_functions_work_not_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the send-message sample on empty tables: its chat does not exist, a 404
    code = invoke.main(["ChatsFunction", str(ROOT / "events" / "chats_send_message.json")])
    out = capsys.readouterr()
    assert (code, json.loads(out.out)["statusCode"]) == (0, 404)
    assert "answered 404" in out.err


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"statusCode": 502, "body": "{}"}, (False, "answered 502")),
        ({"statusCode": 201, "body": "{}"}, (True, "answered 201")),
        ({"batchItemFailures": []}, (True, "every record handled")),
        ({"isAuthorized": False}, (True, "not authorized")),
    ],
)
def test_the_outcome_of_a_result(result: dict[str, object], expected: tuple[bool, str]) -> None:
    assert invoke.outcome(result) == expected


def test_with_no_stack_running_the_sms_goes_to_a_fake_provider_started_for_the_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given no running stack, When the SendSms sample is invoked
    code = invoke.main(["SendSmsFunction", str(ROOT / "events" / "send_sms_commands.json")])

    # Then its command is sent (to the fake provider of this call), the malformed one rejected
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out) == {"batchItemFailures": []}
    assert "provider POST /messages to=+14155550101 -> 202" in out.err
    assert "every record handled" in out.err
