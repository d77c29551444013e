"""``make run``'s stack with the real template: outputs, outside tools, the stream pipeline, restarts."""

from __future__ import annotations

import gc
import json
import urllib.request
from pathlib import Path

import boto3
import pytest

from local.collector import FREEZE_SECONDS, YOUNG_THRESHOLD
from local.stack_server import StackServer, wait_for_quiet
from local.template import ROOT
from tests.local.conftest import Lines, eventually, free_config, http

PHONE = "+14155550101"
OTHER = "+14155550102"
THIRD = "+14155550103"


def _sign_in(url: str, phone: str) -> str:
    status, body = http("POST", f"{url}/v1/sessions", {"phoneNumber": phone})
    assert status == 201, body
    return str(body["token"])


def test_the_stack_serves_the_api_and_writes_its_outputs(tmp_path: Path) -> None:
    # Given the real template started on free ports
    with StackServer(free_config(tmp_path), log=Lines()) as stack:
        url = stack.outputs["HttpApiUrl"]

        # When a client checks health, signs in and reads its profile through the authorizer
        health = http("GET", f"{url}/v1/health")
        token = _sign_in(url, PHONE)
        me = http("GET", f"{url}/v1/users/me", headers={"authorization": f"Bearer {token}"})
        anonymous = http("GET", f"{url}/v1/users/me")

        # Then everything answers per the contract, and outputs.json names every endpoint
        assert health == (200, {"status": "ok"})
        assert me[0] == 200
        assert me[1]["phoneNumber"] == PHONE
        assert anonymous[0] == 401
        assert anonymous[1]["error"]["code"] == "unauthorized"
        written = json.loads((tmp_path / "outputs.json").read_text())
        assert written == stack.outputs
        assert written["HttpApiUrl"] == url
        assert {"AwsEndpointUrl", "SmsProviderUrl", "UsersTableName", "ChatsTableName"} <= set(written)


def test_the_web_client_at_slash_is_configured_with_this_stacks_urls(tmp_path: Path) -> None:
    # Given the stack with the web client, on free ports (not 3000 / 3001)
    with StackServer(free_config(tmp_path, static_dir=ROOT / "web"), log=Lines()) as stack:
        # When a browser loads the page
        page = _text(f"{stack.outputs['HttpApiUrl']}/")

    # Then it names this stack's HTTP and WebSocket URLs, so real time works whatever the ports
    assert stack.outputs["HttpApiUrl"] != "http://127.0.0.1:3000"
    assert f'<meta name="chatflow-api-url" content="{stack.outputs["HttpApiUrl"]}">' in page
    assert f'<meta name="chatflow-ws-url" content="{stack.outputs["WebSocketUrl"]}">' in page


def test_outside_tools_reach_the_same_aws_endpoint(tmp_path: Path) -> None:
    # Given the running stack and a plain boto3 client configured like the AWS CLI would be
    with StackServer(free_config(tmp_path), log=Lines()) as stack:
        client = boto3.client(
            "dynamodb",
            endpoint_url=stack.outputs["AwsEndpointUrl"],
            region_name="us-east-1",
            aws_access_key_id="any",
            aws_secret_access_key="any",
        )
        token = _sign_in(stack.outputs["HttpApiUrl"], PHONE)

        # When it looks at the users table
        items = client.scan(TableName=stack.outputs["UsersTableName"])["Items"]

        # Then it sees what the API wrote
        assert token
        assert any(item.get("phoneNumber", {}).get("S") == PHONE for item in items)


def test_the_chats_stream_reorders_the_inbox_through_its_function(tmp_path: Path) -> None:
    # Given a user with two chats, the older one listed last
    with StackServer(free_config(tmp_path), log=Lines()) as stack:
        url = stack.outputs["HttpApiUrl"]
        token = _sign_in(url, PHONE)
        auth = {"authorization": f"Bearer {token}"}
        first = http("POST", f"{url}/v1/chats", {"type": "direct", "members": [OTHER]}, auth)[1]["chatId"]
        second = http("POST", f"{url}/v1/chats", {"type": "direct", "members": [THIRD]}, auth)[1]["chatId"]

        def order() -> list[str]:
            return [c["chatId"] for c in http("GET", f"{url}/v1/chats", headers=auth)[1]["items"]]

        eventually(lambda: order() == [second, first])

        # When a message goes to the older chat
        status, _ = http(
            "POST", f"{url}/v1/chats/{first}/messages", {"text": "hi", "clientMessageId": "c1"}, auth
        )
        assert status == 201

        # Then the stream consumer moves it to the top of the inbox
        eventually(lambda: order() == [first, second])


def test_the_stack_freezes_its_heap_while_it_runs_and_unfreezes_it_when_it_stops(tmp_path: Path) -> None:
    # Given a running stack (its process holds all of emulated AWS)
    thresholds = gc.get_threshold()
    with StackServer(free_config(tmp_path), log=Lines()) as stack:
        assert http("GET", f"{stack.outputs['HttpApiUrl']}/v1/health")[0] == 200

        # Then within a freeze period its surviving objects leave the automatic full collections,
        # and the young generation is collected after more allocations than CPython's 700
        frozen = eventually(gc.get_freeze_count, timeout=FREEZE_SECONDS + 5)
        young_while_running = gc.get_threshold()[0]

    # And once it stops, the process collects as CPython does again
    assert frozen > 0
    assert young_while_running == YOUNG_THRESHOLD
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


def test_data_written_before_a_restart_is_there_after_it_and_fresh_forgets_it(tmp_path: Path) -> None:
    # Given a stack where a user signed in and named themselves
    with StackServer(free_config(tmp_path), log=Lines()) as stack:
        url = stack.outputs["HttpApiUrl"]
        token = _sign_in(url, PHONE)
        auth = {"authorization": f"Bearer {token}"}
        assert http("PATCH", f"{url}/v1/users/me", {"displayName": "Ada"}, auth)[0] == 200

    # When the stack is started again on the same state directory
    with StackServer(free_config(tmp_path), log=Lines()) as stack:
        me = http("GET", f"{stack.outputs['HttpApiUrl']}/v1/users/me", headers=auth)

    # Then the session and the profile survived; a fresh start has neither
    assert me[0] == 200
    assert me[1]["displayName"] == "Ada"
    with StackServer(free_config(tmp_path, fresh=True), log=Lines()) as stack:
        forgotten = http("GET", f"{stack.outputs['HttpApiUrl']}/v1/users/me", headers=auth)
    assert forgotten[0] == 401


class FakeClock:
    """A clock that only moves when waited on; ``activity`` are the times requests came."""

    def __init__(self, activity: list[float]) -> None:
        self.now = 100.0
        self.activity = activity
        self.waits: list[float] = []

    def last_activity(self) -> float:
        return max((t for t in self.activity if t <= self.now), default=0.0)

    def wait(self, seconds: float) -> bool:
        assert seconds > 0
        self.waits.append(seconds)
        self.now += seconds
        return False


def test_a_snapshot_waits_for_a_quiet_moment_when_requests_are_coming() -> None:
    # Given requests until 100.4 s, then none
    clock = FakeClock([99.9, 100.1, 100.3, 100.4])

    # When a snapshot wants 0.25 s without requests, 10 s at most
    done = wait_for_quiet(clock.last_activity, clock.wait, 0.25, 10.0, clock=lambda: clock.now)

    # Then it goes ahead 0.25 s after the last request, not before
    assert done
    assert clock.now >= 100.65
    assert clock.now < 100.66


def test_under_constant_requests_a_snapshot_waits_no_longer_than_its_limit() -> None:
    # Given a request every 0.1 s, on and on
    clock = FakeClock([100.0 + n / 10 for n in range(1000)])

    # When a snapshot wants 0.25 s without requests, 10 s at most
    done = wait_for_quiet(clock.last_activity, clock.wait, 0.25, 10.0, clock=lambda: clock.now)

    # Then it goes ahead after 10 s
    assert done
    assert clock.now == pytest.approx(110.0)


def test_a_quiet_stack_snapshots_at_once_and_a_stopping_one_not_at_all() -> None:
    quiet = FakeClock([50.0])
    assert wait_for_quiet(quiet.last_activity, quiet.wait, 0.25, 10.0, clock=lambda: quiet.now)
    assert quiet.waits == []
    stopping = wait_for_quiet(lambda: 100.0, lambda seconds: True, 0.25, 10.0, clock=lambda: 100.0)
    assert not stopping


def test_a_running_stack_snapshots_its_state_once_quiet(tmp_path: Path) -> None:
    # Given a running stack where a user signed in
    with StackServer(free_config(tmp_path), log=Lines()) as stack:
        state = tmp_path / "aws-state.pickle"
        _sign_in(stack.outputs["HttpApiUrl"], PHONE)

        # When it has been quiet for a while
        # Then the state is saved while it runs (a kill -9 now would lose nothing)
        eventually(state.exists, timeout=15)
        assert state.stat().st_size > 0


def test_an_unreadable_state_file_starts_clean_and_keeps_the_file(tmp_path: Path) -> None:
    # Given a state file that is not a saved state
    (tmp_path / "aws-state.pickle").write_bytes(b"not a pickle")
    log = Lines()

    # When the stack starts
    with StackServer(free_config(tmp_path), log=log) as stack:
        health = http("GET", f"{stack.outputs['HttpApiUrl']}/v1/health")

    # Then it serves, says why it started clean, and kept the old file aside
    assert health[0] == 200
    assert log.matching("could not read the saved state")
    assert list(tmp_path.glob("aws-state.unreadable-*"))


def test_a_route_added_to_the_template_is_served_without_any_other_change(tmp_path: Path) -> None:
    # Given a copy of template.yaml with one more function and route, and nothing else changed
    code = tmp_path / "hello"
    code.mkdir()
    (code / "app.py").write_text(
        "def handler(event, context):\n"
        "    return {'statusCode': 200, 'body': 'hello ' + event['pathParameters']['name']}\n"
    )
    resource = f"""
  HelloFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {code}
      Handler: app.handler
      Events:
        Hello:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Method: GET
            Path: /v1/hello/{{name}}
            Auth:
              Authorizer: NONE
"""
    source = (ROOT / "template.yaml").read_text()
    for folder in ("functions/", "layers/"):
        source = source.replace(f"Uri: {folder}", f"Uri: {ROOT / folder}")
    resources, outputs = source.split("\nOutputs:", 1)
    template = tmp_path / "template.yaml"
    template.write_text(resources.rstrip() + "\n" + resource + "\nOutputs:" + outputs)

    # When the stack is started on it
    with StackServer(free_config(tmp_path / "state", template), log=Lines()) as stack:
        answer = _text(f"{stack.outputs['HttpApiUrl']}/v1/hello/world")

    # Then the new route answers
    assert answer == "hello world"


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=15) as response:
        return str(response.read().decode())
