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
