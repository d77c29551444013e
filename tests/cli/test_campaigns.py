"""``chatflow campaign …`` against a stub of the campaign API (CONTRACT §5) and of S3's presigned PUT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatflow_cli import campaigns
from tests.cli.conftest import chatflow
from tests.cli.stub_api import CODE, NOT_OPERATOR, OPERATOR, StubApi

AS = ("--as", OPERATOR)
ICCID_A = "8944500102198304821"
ICCID_B = "8944500102198304822"
ICCID_FAILS = "8944500102198304820"  # the stub fails ICCIDs ending in 0


def test_create_prints_the_new_campaign_and_its_variables(stub: StubApi, stub_state: Path) -> None:
    # Given an operator
    # When they create a campaign with two template variables
    result = chatflow(
        stub_state,
        *AS,
        "campaign",
        "create",
        "--name",
        "Spring",
        "--template",
        "Hi {{name}}, {{code}} is yours",
    )

    # Then the campaign exists and its id and variables are printed
    assert result.exit_code == 0, result.output
    (campaign,) = stub.campaigns.values()
    assert campaign["name"] == "Spring"
    assert campaign["campaignId"] in result.stdout
    assert "variables: code, name" in result.stdout


def test_preview_prints_the_rendered_text_and_how_it_travels(stub: StubApi, stub_state: Path) -> None:
    # Given an operator
    # When they preview a template with a value for each variable
    result = chatflow(
        stub_state, *AS, "campaign", "preview", "--template", "Hi {{name}}, {{code}}", "--var", "name=Ana",
        "--var", "code=a=b",
    )  # fmt: skip

    # Then the rendered text (a value may hold "=") and its encoding, parts and length are printed
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["Hi Ana, a=b", "GSM-7, 1 SMS part(s), 11 characters"]


def test_preview_says_how_to_write_a_variable_and_what_has_no_value(stub: StubApi, stub_state: Path) -> None:
    # Given an operator
    # When a --var has no "=", and when a variable is left without a value
    malformed = chatflow(stub_state, *AS, "campaign", "preview", "--template", "Hi {{name}}", "--var", "name")
    missing = chatflow(stub_state, *AS, "campaign", "preview", "--template", "Hi {{name}}")

    # Then each fails with what to do
    assert malformed.exit_code != 0
    assert "NAME=VALUE" in malformed.stderr
    assert missing.exit_code == 1
    assert "validation_error: no value for name" in missing.stderr


def test_a_contract_error_is_printed_as_code_message_and_details_with_exit_code_1(
    stub: StubApi, stub_state: Path
) -> None:
    # Given an operator
    # When the template is malformed
    result = chatflow(stub_state, *AS, "campaign", "create", "--name", "Bad", "--template", "Hi {{name")

    # Then the contract error shows as code: message, with its details, and nothing was created
    assert result.exit_code == 1
    assert "invalid_template: the template has a malformed variable" in result.stderr
    assert "template: unclosed or empty variable near character 3" in result.stderr
    assert "Traceback" not in result.output
    assert stub.campaigns == {}


def test_a_user_without_the_operator_role_gets_the_forbidden_error(stub: StubApi, stub_state: Path) -> None:
    # Given a user who is not an operator
    # When they list campaigns
    result = chatflow(stub_state, "--as", NOT_OPERATOR, "campaign", "list")

    # Then the 403 is reported, not a traceback
    assert result.exit_code == 1
    assert "forbidden: campaigns are for operators" in result.stderr


def test_list_shows_campaigns_newest_first_and_all_pages_with_all(stub: StubApi, stub_state: Path) -> None:
    # Given three campaigns
    ids = [stub.add_campaign(name) for name in ("First", "Second", "Third")]

    # When the operator lists them one per page, first without then with --all
    first_page = chatflow(stub_state, *AS, "campaign", "list", "--limit", "1")
    every_page = chatflow(stub_state, *AS, "campaign", "list", "--limit", "1", "--all")

    # Then the first page has the newest one and says there are more; --all shows every one, newest first
    assert first_page.exit_code == 0, first_page.output
    assert "Third" in first_page.stdout
    assert "Second" not in first_page.stdout
    assert "more campaigns: pass --all" in first_page.stdout
    assert every_page.exit_code == 0, every_page.output
    positions = [every_page.stdout.index(campaign_id) for campaign_id in reversed(ids)]
    assert positions == sorted(positions)
    assert "more campaigns" not in every_page.stdout


def test_status_shows_the_counts_and_the_last_error(stub: StubApi, stub_state: Path) -> None:
    # Given a campaign that has sent one message and failed one
    campaign_id = stub.add_campaign("Autumn", iccids=(ICCID_FAILS, ICCID_A, ICCID_B))
    stub.sends_per_read = 2

    # When the operator asks for its status
    result = chatflow(stub_state, *AS, "campaign", "status", campaign_id)

    # Then name, status, counts and the last error are shown
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert "name Autumn" in lines
    assert "status sending" in lines
    assert {"total 3", "queued 1", "sent 1", "failed 1", "delivered 0"} <= set(lines)
    assert {"skipped 0", "expired 0", "cancelled 0", "valid for 86400 s"} <= set(lines)
    assert "last error invalid_destination: the provider refused the number" in lines


def test_upload_puts_the_file_and_follows_the_sending_until_nothing_is_queued(
    stub: StubApi, stub_state: Path, tmp_path: Path
) -> None:
    # Given a campaign and a CSV with three good rows and one bad ICCID
    campaign_id = stub.add_campaign("Winter")
    csv = f"iccid,name\n{ICCID_A},Ann\n{ICCID_B},Bob\n123,Bad\n{ICCID_FAILS},Cy\n"
    file = tmp_path / "recipients.csv"
    file.write_text(csv, encoding="utf-8")

    # When the operator uploads it
    result = chatflow(stub_state, *AS, "campaign", "upload", campaign_id, str(file), "--interval", "0")

    # Then the file went to the presigned URL as text/csv without the API token, the checks and
    # the sending were followed to the end, and the summary adds up
    assert result.exit_code == 0, result.output
    (put,) = stub.puts
    assert put.body == csv.encode()
    assert put.headers["content-type"] == "text/csv"
    assert "authorization" not in put.headers
    assert "upload accepted: 3 recipients, 0 duplicates, 1 invalid rows" in result.stdout
    assert "row 4: invalid iccid '123'" in result.stdout
    assert "nothing left queued: 2 sent, 1 failed, 0 delivered of 3" in result.stdout
    assert stub.campaigns[campaign_id]["counts"]["queued"] == 0
    assert stub.requests.count(f"GET /v1/campaigns/{campaign_id}") >= 2  # polled, not read once


def test_a_rejected_upload_shows_why_and_exits_1(stub: StubApi, stub_state: Path, tmp_path: Path) -> None:
    # Given a campaign whose template needs {{name}} and a CSV without that column
    campaign_id = stub.add_campaign("Rejected", "Hi {{name}}")
    file = tmp_path / "no-names.csv"
    file.write_text(f"iccid\n{ICCID_A}\n", encoding="utf-8")

    # When the operator uploads it
    result = chatflow(stub_state, *AS, "campaign", "upload", campaign_id, str(file), "--interval", "0")

    # Then the rejection and its reason are shown, the exit code is 1 and the sending is not followed
    assert result.exit_code == 1
    assert "upload rejected: missing columns: name" in result.stdout
    assert f"GET /v1/campaigns/{campaign_id}" not in stub.requests


def test_upload_with_no_wait_returns_once_the_file_is_uploaded(
    stub: StubApi, stub_state: Path, tmp_path: Path
) -> None:
    # Given a campaign and a CSV
    campaign_id = stub.add_campaign("Quick")
    file = tmp_path / "r.csv"
    file.write_text(f"iccid,name\n{ICCID_A},Ann\n", encoding="utf-8")

    # When the operator uploads it with --no-wait
    result = chatflow(stub_state, *AS, "campaign", "upload", campaign_id, str(file), "--no-wait")

    # Then the file is uploaded and its upload id printed, and nothing is polled
    assert result.exit_code == 0, result.output
    assert len(stub.puts) == 1
    assert "upload up-1" in result.stdout
    assert not [r for r in stub.requests if r.startswith("GET")]


def test_ctrl_c_while_following_stops_watching_without_an_error(
    stub: StubApi, stub_state: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an upload whose sending takes several polls, and an operator who presses Ctrl-C while waiting
    campaign_id = stub.add_campaign("Long")
    stub.sends_per_read = 1
    file = tmp_path / "r.csv"
    file.write_text(f"iccid,name\n{ICCID_A},Ann\n{ICCID_B},Bob\n", encoding="utf-8")
    waits: list[float] = []

    def interrupted(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(campaigns, "sleep", interrupted)

    # When the upload is followed
    result = chatflow(stub_state, *AS, "campaign", "upload", campaign_id, str(file), "--interval", "0")

    # Then watching stops cleanly, saying how to look again, while recipients are still queued
    assert result.exit_code == 0, result.output
    assert f"stopped watching; the campaign goes on without you (chatflow campaign status {campaign_id})" in (
        result.stdout
    )
    assert stub.campaigns[campaign_id]["counts"]["queued"] > 0


def test_recipients_filters_by_status_and_follows_every_page_with_all(
    stub: StubApi, stub_state: Path
) -> None:
    # Given a campaign with two failed recipients and one sent
    failed = ("8944500102198304810", "8944500102198304830")
    campaign_id = stub.add_campaign("Mixed", iccids=(*failed, ICCID_A))
    stub.sends_per_read = 3
    assert chatflow(stub_state, *AS, "campaign", "status", campaign_id).exit_code == 0  # sends them all

    # When the operator lists the failed ones, one per page
    one_page = chatflow(
        stub_state, *AS, "campaign", "recipients", campaign_id, "--status", "failed", "--limit", "1"
    )
    every_page = chatflow(
        stub_state, *AS, "campaign", "recipients", campaign_id, "--status", "failed", "--limit", "1", "--all"
    )

    # Then one page shows one and says there are more; --all shows both, and never the sent one
    assert one_page.exit_code == 0, one_page.output
    assert failed[0] in one_page.stdout
    assert failed[1] not in one_page.stdout
    assert "1 shown; more recipients: pass --all" in one_page.stdout
    assert every_page.exit_code == 0, every_page.output
    rows = [line.split() for line in every_page.stdout.splitlines() if line.strip()]
    assert rows[0][:3] == ["iccid", "status", "attempts"]
    assert [row[:3] for row in rows[1:]] == [[iccid, "failed", "1"] for iccid in failed]
    assert "invalid_destination:" in every_page.stdout
    assert ICCID_A not in every_page.stdout


def test_a_code_is_asked_for_when_the_stack_has_no_fake_provider(stub: StubApi, stub_state: Path) -> None:
    # Given a stack that sends sign-in codes by SMS and has no fake provider to read them from
    stub.auth_mode = "otp"

    # When the operator runs a command and types the code they received
    result = chatflow(stub_state, *AS, "campaign", "list", input=f"{CODE}\n")

    # Then they were asked for it, and signed in with it
    assert result.exit_code == 0, result.output
    assert f"Code sent by SMS to {OPERATOR}" in result.output
    assert stub.sessions_created == 1


def test_the_cached_token_is_reused_and_replaced_after_a_401(stub: StubApi, stub_state: Path) -> None:
    # Given an operator who signed in once through the CLI
    assert chatflow(stub_state, *AS, "campaign", "list").exit_code == 0
    cached = json.loads((stub_state / "cli-tokens.json").read_text())[stub.url][OPERATOR]["token"]

    # When they run a second command, then a third after the API forgot every session
    second = chatflow(stub_state, *AS, "campaign", "list")
    stub.revoke_tokens()
    third = chatflow(stub_state, *AS, "campaign", "list")

    # Then the second reused the token, the third signed in once more and cached the new token
    assert second.exit_code == 0, second.output
    assert third.exit_code == 0, third.output
    assert stub.sessions_created == 2
    assert json.loads((stub_state / "cli-tokens.json").read_text())[stub.url][OPERATOR]["token"] != cached


def test_the_token_cache_is_readable_by_its_owner_only(stub: StubApi, stub_state: Path) -> None:
    # Given an operator
    # When the CLI signs them in
    assert chatflow(stub_state, *AS, "campaign", "list").exit_code == 0

    # Then the cached token is in a file no one else may read
    assert (stub_state / "cli-tokens.json").stat().st_mode & 0o777 == 0o600


def test_an_opted_out_recipient_is_shown_skipped_and_the_sending_ends_without_it(
    stub: StubApi, stub_state: Path, tmp_path: Path
) -> None:
    # Given a campaign and a CSV of two recipients, one of whom opted out
    campaign_id = stub.add_campaign("Spring")
    stub.opted_out.add(ICCID_B)
    file = tmp_path / "recipients.csv"
    file.write_text(f"iccid,name\n{ICCID_A},Ann\n{ICCID_B},Bob\n", encoding="utf-8")

    # When the operator uploads it and then asks for the skipped recipients
    result = chatflow(stub_state, *AS, "campaign", "upload", campaign_id, str(file), "--interval", "0")
    skipped = chatflow(stub_state, *AS, "campaign", "recipients", campaign_id, "--status", "skipped")

    # Then the upload and the summary say one was skipped, and it is listed as such
    assert result.exit_code == 0, result.output
    assert "upload accepted: 1 recipients, 1 skipped (opted out), 0 duplicates" in result.stdout
    assert "nothing left queued: 1 sent, 0 failed, 0 delivered, 1 skipped of 2" in result.stdout
    assert skipped.exit_code == 0, skipped.output
    assert ICCID_B in skipped.stdout
    assert ICCID_A not in skipped.stdout


def test_create_passes_the_validity_of_the_campaigns_sms(stub: StubApi, stub_state: Path) -> None:
    result = chatflow(
        stub_state, *AS, "campaign", "create", "--name", "Flash", "--template", "Today", "--valid-for", "3600"
    )

    assert result.exit_code == 0, result.output
    assert "valid for: 3600 s" in result.stdout
    (campaign,) = stub.campaigns.values()
    assert campaign["validFor"] == 3600


# ---- control: pause, resume, cancel, estimate, watch ---------------------------------------------


def test_pause_resume_and_cancel_print_the_new_status_under_either_spelling(
    stub: StubApi, stub_state: Path
) -> None:
    # Given a campaign with queued recipients
    campaign_id = stub.add_campaign("Spring", iccids=(ICCID_A, ICCID_B))

    # When the operator pauses it (`campaign`), resumes it and cancels it (`campaigns`, the spelling)
    paused = chatflow(stub_state, *AS, "campaign", "pause", campaign_id)
    resumed = chatflow(stub_state, *AS, "campaigns", "resume", campaign_id)
    cancelled = chatflow(stub_state, *AS, "campaigns", "cancel", campaign_id)

    # Then each says what the campaign is now
    assert paused.exit_code == 0, paused.output
    assert f"campaign {campaign_id} paused: status paused, 2 queued of 2" in paused.stdout
    assert f"campaign {campaign_id} resumed: status sending" in resumed.stdout
    assert f"campaign {campaign_id} cancelled: status cancelled" in cancelled.stdout
    assert stub.requests[-1] == f"POST /v1/campaigns/{campaign_id}/cancel"


def test_an_invalid_transition_is_the_contracts_409_with_exit_code_1(stub: StubApi, stub_state: Path) -> None:
    campaign_id = stub.add_campaign("Done", iccids=(ICCID_A,))
    chatflow(stub_state, *AS, "campaign", "cancel", campaign_id)

    result = chatflow(stub_state, *AS, "campaign", "resume", campaign_id)

    assert result.exit_code == 1
    assert "campaign_cancelled: the campaign is cancelled, for good" in result.stderr
    unknown = chatflow(stub_state, *AS, "campaign", "pause", "nope")
    assert unknown.exit_code == 1
    assert "no campaign nope: `chatflow campaign list`" in unknown.stderr


def test_estimate_prints_messages_and_sms_parts(stub: StubApi, stub_state: Path) -> None:
    campaign_id = stub.add_campaign("Spring", iccids=(ICCID_A, ICCID_B))

    result = chatflow(stub_state, *AS, "campaigns", "estimate", campaign_id)

    assert result.exit_code == 0, result.output
    assert "2 messages, 2 SMS parts (GSM-7: 2, UCS-2: 0)" in result.stdout


def test_create_passes_send_at_rate_and_quiet_hours(stub: StubApi, stub_state: Path) -> None:
    result = chatflow(
        stub_state, *AS, "campaign", "create", "--name", "Night", "--template", "Hi", "--send-at",
        "2026-12-24T09:00:00Z", "--rate", "5", "--quiet-hours", "21:00-08:00",
    )  # fmt: skip
    bad = chatflow(
        stub_state, *AS, "campaign", "create", "--name", "x", "--template", "Hi", "--quiet-hours", "9pm"
    )

    assert result.exit_code == 0, result.output
    (campaign,) = stub.campaigns.values()
    assert (campaign["sendAt"], campaign["ratePerSecond"]) == ("2026-12-24T09:00:00Z", 5)
    assert campaign["quietHours"] == {"start": "21:00", "end": "08:00"}
    assert "sends from: 2026-12-24T09:00:00Z" in result.stdout
    assert "rate: at most 5 SMS per second" in result.stdout
    assert "quiet hours: 21:00-08:00 (each recipient's local time)" in result.stdout
    assert bad.exit_code != 0
    assert "START-END" in bad.stderr
    assert stub.requests.count("POST /v1/campaigns") == 1  # the bad one was not sent


def test_the_progress_bar_shows_a_pause_and_keeps_watching_until_nothing_is_queued(
    stub: StubApi, stub_state: Path
) -> None:
    # Given a campaign of four queued recipients, sent one per read, that another operator pauses
    # at the second read and resumes at the fifth
    campaign_id = stub.add_campaign(
        "Long", iccids=(ICCID_A, ICCID_B, "8944500102198304823", "8944500102198304824")
    )
    stub.sends_per_read = 1

    def operator_elsewhere(read: int, campaign: dict[str, object]) -> None:
        if read == 2:
            campaign["status"] = "paused"
        if read == 5:
            campaign["status"] = "sending"

    stub.on_read = operator_elsewhere

    # When the operator watches it
    result = chatflow(stub_state, *AS, "campaigns", "watch", campaign_id, "--interval", "0")

    # Then the bar said paused, went on watching through the pause, and ended when nothing was queued
    assert result.exit_code == 0, result.output
    assert "campaign paused" in result.stdout
    assert "campaign sending" in result.stdout
    assert result.stdout.index("campaign paused") < result.stdout.index("campaign sending")
    assert "nothing left queued: 4 sent, 0 failed, 0 delivered of 4" in result.stdout
    assert stub.reads >= 6
