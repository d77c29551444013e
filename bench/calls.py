"""AWS calls per HTTP operation, for small and large data, on the real application.

The whole stack from ``template.yaml`` runs in this process against moto
(``local.stack.InProcessStack``); every request goes through the Lambda authorizer and
the route's function as API Gateway would send it.

How calls are counted: a botocore ``before-call`` hook on the clients the functions use
(``chatflow.adapters.aws.dynamodb`` / ``secretsmanager``, cached once per region, so the
very objects the handlers call). ``before-call`` fires once per API operation, before
any retry, so a figure is the number of requests the code makes. Each call is charged to
the function that is running (each ``LocalFunction.invoke`` is wrapped), so the
authorizer's own calls are reported apart from the route function's.

Each measured request is preceded by a warm-up request to the same function: the
one-time Secrets Manager read of a fresh execution environment (the cursor-signing key
of the chats function) is not part of any figure.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from local.emulated_aws import use_emulated_aws

use_emulated_aws(
    POWERTOOLS_SERVICE_NAME="chatflow-bench",
    POWERTOOLS_LOG_LEVEL="ERROR",
    POWERTOOLS_METRICS_NAMESPACE="ChatFlowBench",
)

from moto import mock_aws  # after the credentials above

from chatflow.adapters import aws
from chatflow.adapters.chat_store import chat_key, message_item, msg_sk, rate_key
from chatflow.adapters.dynamo import batch_write, to_raw, to_value
from chatflow.domain.chats import Message
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.send_limit import micros
from local.apigw import HttpResult, build_query
from local.runtime import LocalFunction
from local.specs import REGION
from local.stack import InProcessStack

AUTHORIZER = "AuthorizerFunction"
DYNAMODB_READ_TARGET = 2
DYNAMODB_SEND_TARGET = 3

ALICE = "+14155550101"
BOB = "+14155550102"
CAROL = "+14155550103"
DAVE = "+14155550104"


def _phone(n: int) -> str:
    """A valid US number for member ``n`` (the 555-01xx block is reserved for fiction)."""
    return f"+1212555{n:04d}"


# ---- counting ------------------------------------------------------------------------------


@dataclass
class CallLog:
    """AWS calls charged to the function that made them: {function: Counter("svc.Op")}."""

    running: list[str] = field(default_factory=list)
    calls: dict[str, Counter[str]] = field(default_factory=dict)

    def on_call(self, model: Any, **_: Any) -> None:
        owner = self.running[-1] if self.running else "(outside any function)"
        self.calls.setdefault(owner, Counter())[f"{model.service_model.service_name}.{model.name}"] += 1

    @contextmanager
    def recording(self) -> Iterator[dict[str, Counter[str]]]:
        """The calls made inside the block, and only those."""
        recorded: dict[str, Counter[str]] = {}
        self.calls = recorded
        try:
            yield recorded
        finally:
            self.calls = {}

    def wrap(self, function: LocalFunction) -> None:
        original = function.invoke
        name = function.spec.logical_id

        def invoke(event: dict[str, Any]) -> Any:
            self.running.append(name)
            try:
                return original(event)
            finally:
                self.running.pop()

        # An instance attribute: HttpApi keeps these very objects and calls .invoke on them.
        setattr(function, "invoke", invoke)  # noqa: B010


@dataclass(frozen=True)
class Measurement:
    operation: str
    case: str
    status: int
    function: str
    calls: Counter[str]
    authorizer: Counter[str]
    target: int | None

    def count(self, service: str, calls: Counter[str] | None = None) -> int:
        source = self.calls if calls is None else calls
        return sum(n for op, n in source.items() if op.startswith(f"{service}."))

    @property
    def dynamodb(self) -> int:
        return self.count("dynamodb")

    @property
    def other(self) -> int:
        return sum(self.calls.values()) - self.dynamodb

    @property
    def authorizer_dynamodb(self) -> int:
        return self.count("dynamodb", self.authorizer)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.dynamodb <= self.target

    def detail(self) -> str:
        return ", ".join(f"{op.split('.', 1)[1]} x{n}" for op, n in sorted(self.calls.items())) or "-"


class Bench:
    """A fresh stack in moto with call counting on, and a client for its HTTP API."""

    def __init__(self) -> None:
        self.stack = InProcessStack.create(parameters={"AuthMode": "phone"})
        self.log = CallLog()
        for client in (aws.dynamodb(REGION), aws.secretsmanager(REGION)):
            client.meta.events.register("before-call", self.log.on_call)
        for function in self.stack.functions.values():
            self.log.wrap(function)
        self.tokens: dict[str, str] = {}
        self.results: list[Measurement] = []

    # -- HTTP -----------------------------------------------------------------------------

    def call(
        self, method: str, path: str, body: Any = None, *, who: str | None = None, query: Any = None
    ) -> HttpResult:
        headers = {"content-type": "application/json"}
        if who is not None:
            headers["authorization"] = f"Bearer {self.token(who)}"
        payload = None if body is None else json.dumps(body)
        return self.stack.http.request(
            method, path, query=build_query(query or {}), headers=headers, body=payload
        )

    def token(self, phone: str) -> str:
        if phone not in self.tokens:
            response = self.call("POST", "/v1/sessions", {"phoneNumber": phone})
            assert response.status == 201, response.body
            self.tokens[phone] = str(response.json()["token"])
        return self.tokens[phone]

    def ok(self, response: HttpResult, *statuses: int) -> HttpResult:
        assert response.status in statuses, f"{response.status} {response.body}"
        return response

    def measure(
        self,
        operation: str,
        case: str,
        request: Callable[[], HttpResult],
        *,
        expect: tuple[int, ...],
        target: int | None = None,
    ) -> Measurement:
        function = self._function_of(operation)
        with self.log.recording() as recorded:
            response = request()
        assert response.status in expect, f"{operation} [{case}]: {response.status} {response.body}"
        result = Measurement(
            operation=operation,
            case=case,
            status=response.status,
            function=function,
            calls=recorded.get(function, Counter()),
            authorizer=recorded.get(AUTHORIZER, Counter()),
            target=target,
        )
        unexplained = set(recorded) - {function, AUTHORIZER}
        assert not unexplained, f"calls outside the route and the authorizer: {unexplained}"
        self.results.append(result)
        return result

    def _function_of(self, operation: str) -> str:
        method, path = operation.split(" ")[:2]
        concrete = path.replace("{id}", "x").replace("{phone}", "x").split("?")[0]
        matched = self.stack.http.match(method, concrete)
        assert matched is not None, operation
        return matched[0].function

    # -- data -----------------------------------------------------------------------------

    def direct_chat(self, caller: str, other: str) -> str:
        response = self.ok(
            self.call("POST", "/v1/chats", {"type": "direct", "members": [other]}, who=caller), 200, 201
        )
        return str(response.json()["chatId"])

    def spend_send_limit(self, phone: str) -> None:
        """Put ``phone`` over its send limit for the next hour (its TAT, as the send path
        stores it: ``chatflow.domain.send_limit``)."""
        tat = micros(datetime.now(UTC) + timedelta(hours=1))
        item = {"PK": f"RATE#{phone}", "SK": "SEND", "tat": tat}
        aws.dynamodb(REGION).put_item(TableName=self._chats_table, Item=to_raw(item))

    def restore_send_limit(self, phone: str) -> None:
        aws.dynamodb(REGION).delete_item(TableName=self._chats_table, Key=rate_key(phone))

    @property
    def _chats_table(self) -> str:
        return str(self.stack.template.physical_ids["ChatsTable"])

    def group(self, caller: str, others: list[str], name: str = "bench") -> str:
        body = {"type": "group", "name": name, "members": others}
        response = self.ok(self.call("POST", "/v1/chats", body, who=caller), 201)
        return str(response.json()["chatId"])

    def send(self, caller: str, chat_id: str, text: str = "hello", cmid: str | None = None) -> HttpResult:
        body = {"text": text, "clientMessageId": cmid or uuid.uuid4().hex}
        return self.call("POST", f"/v1/chats/{chat_id}/messages", body, who=caller)

    def load_history(self, chat_id: str, sender: str, count: int) -> None:
        """``count`` messages stored directly, in the repository's own item format.

        Sending 2,000 messages through the API would take minutes on moto, whose
        ``TransactWriteItems`` copies the whole table on each call; the items and the
        chat's ``lastSeq`` / ``lastMessage`` are exactly what the send path writes.
        """
        client = aws.dynamodb(REGION)
        table = self.stack.template.physical_ids["ChatsTable"]
        chat = client.get_item(TableName=table, Key=chat_key(chat_id))["Item"]
        first = int(chat["lastSeq"]["N"]) + 1
        sent_at = from_iso(chat["lastActivityAt"]["S"])
        items = []
        last: Message | None = None
        for seq in range(first, first + count):
            last = Message(
                f"m_{uuid.uuid4().hex}", chat_id, seq, sender, f"message {seq}", uuid.uuid4().hex, sent_at
            )
            items.append(
                {
                    "PutRequest": {
                        "Item": to_raw({"PK": f"CHAT#{chat_id}", "SK": msg_sk(seq), **message_item(last)})
                    }
                }
            )
        batch_write(client, table, items)
        assert last is not None
        client.update_item(
            TableName=table,
            Key=chat_key(chat_id),
            UpdateExpression="SET lastSeq = :seq, lastMessage = :msg, lastActivityAt = :at",
            ExpressionAttributeValues={
                ":seq": to_value(last.seq),
                ":msg": to_value(message_item(last)),
                ":at": to_value(to_iso(sent_at)),
            },
        )


# ---- the scenarios ---------------------------------------------------------------------------


def _routes(
    bench: Bench, case: str, chat_id: str, caller: str, *, direct_to: str, group_with: list[str]
) -> None:
    """Every chats and identity route the caller can use on ``chat_id``, warm each time."""
    b, r, w = bench, DYNAMODB_READ_TARGET, DYNAMODB_SEND_TARGET
    # Warm-up: the chats and identity functions' first requests (the cursor key's read).
    b.ok(b.call("GET", "/v1/chats", who=caller, query={"limit": 1}), 200)
    b.ok(b.call("GET", "/v1/users/me", who=caller), 200)

    b.measure("GET /v1/chats", case, lambda: b.call("GET", "/v1/chats", who=caller), expect=(200,), target=r)
    b.measure(
        "GET /v1/chats/{id}",
        case,
        lambda: b.call("GET", f"/v1/chats/{chat_id}", who=caller),
        expect=(200,),
        target=r,
    )
    path = f"/v1/chats/{chat_id}/messages"
    b.measure(
        "GET /v1/chats/{id}/messages", case, lambda: b.call("GET", path, who=caller), expect=(200,), target=r
    )
    last = int(b.ok(b.call("GET", f"/v1/chats/{chat_id}", who=caller), 200).json()["lastMessage"]["seq"])
    b.measure(
        "GET /v1/chats/{id}/messages?afterSeq",
        case,
        lambda: b.call("GET", path, who=caller, query={"afterSeq": max(0, last - 10)}),
        expect=(200,),
        target=r,
    )
    b.measure(
        "GET /v1/users/me", case, lambda: b.call("GET", "/v1/users/me", who=caller), expect=(200,), target=r
    )
    cmid = uuid.uuid4().hex
    b.measure(
        "POST /v1/chats/{id}/messages (new)",
        case,
        lambda: b.send(caller, chat_id, "new", cmid),
        expect=(201,),
        target=w,
    )
    b.measure(
        "POST /v1/chats/{id}/messages (repeat)",
        case,
        lambda: b.send(caller, chat_id, "new", cmid),
        expect=(200,),
        target=w,
    )
    body = {"to": direct_to, "text": "hi", "clientMessageId": uuid.uuid4().hex}
    b.measure(
        "POST /v1/messages (new direct chat)",
        case,
        lambda: b.call("POST", "/v1/messages", body, who=caller),
        expect=(201,),
    )
    again = {"to": direct_to, "text": "again", "clientMessageId": uuid.uuid4().hex}
    b.measure(
        "POST /v1/messages (existing chat)",
        case,
        lambda: b.call("POST", "/v1/messages", again, who=caller),
        expect=(201,),
        target=w,
    )
    b.spend_send_limit(caller)
    b.measure(
        "POST /v1/chats/{id}/messages (over the send limit)",
        case,
        lambda: b.send(caller, chat_id, "too fast"),
        expect=(429,),
        target=w,
    )
    b.measure(
        "POST /v1/chats/{id}/messages (repeat, over the send limit)",
        case,
        lambda: b.send(caller, chat_id, "new", cmid),
        expect=(200,),
        target=w,
    )
    b.restore_send_limit(caller)
    seq = last + 1
    receipt = {"type": "read", "upToSeq": seq}
    b.measure(
        "POST /v1/chats/{id}/receipts",
        case,
        lambda: b.call("POST", f"/v1/chats/{chat_id}/receipts", receipt, who=group_with[0]),
        expect=(204,),
    )
    new_direct = {"type": "direct", "members": [direct_to]}
    b.measure(
        "POST /v1/chats (direct, existing)",
        case,
        lambda: b.call("POST", "/v1/chats", new_direct, who=caller),
        expect=(200,),
    )
    fresh = _phone(9000 + len(b.results))
    b.measure(
        "POST /v1/chats (direct, new)",
        case,
        lambda: b.call("POST", "/v1/chats", {"type": "direct", "members": [fresh]}, who=caller),
        expect=(201,),
    )
    group = {"type": "group", "name": "bench", "members": group_with}
    b.measure(
        f"POST /v1/chats (group of {len(group_with) + 1})",
        case,
        lambda: b.call("POST", "/v1/chats", group, who=caller),
        expect=(201,),
    )


def small() -> list[Measurement]:
    """A direct chat of 2 with 10 messages; a user with 3 chats; every route once."""
    with mock_aws():
        b = Bench()
        b.token(ALICE)
        b.measure(
            "GET /v1/chats (first request of a fresh function)",
            "small",
            lambda: b.call("GET", "/v1/chats", who=ALICE),
            expect=(200,),
        )
        chat_id = b.direct_chat(ALICE, BOB)
        b.group(ALICE, [BOB, CAROL])
        b.direct_chat(ALICE, CAROL)
        for i in range(10):
            b.ok(b.send(ALICE if i % 2 else BOB, chat_id, f"message {i}"), 201)
        b.stack.drain_streams()
        _routes(
            b,
            "small: 2 members, 10 messages, 3 chats",
            chat_id,
            ALICE,
            direct_to=DAVE,
            group_with=[BOB, CAROL],
        )
        case = "small"
        group_id = b.group(ALICE, [BOB, CAROL, DAVE])
        b.measure(
            "POST /v1/chats/{id}/members",
            case,
            lambda: b.call("POST", f"/v1/chats/{group_id}/members", {"members": [_phone(1)]}, who=ALICE),
            expect=(200,),
        )
        b.measure(
            "DELETE /v1/chats/{id}/members/{phone}",
            case,
            lambda: b.call("DELETE", f"/v1/chats/{group_id}/members/{_phone(1)}", who=ALICE),
            expect=(204,),
        )
        b.measure(
            "PATCH /v1/users/me (username)",
            case,
            lambda: b.call("PATCH", "/v1/users/me", {"username": "alice"}, who=ALICE),
            expect=(200,),
        )
        b.measure(
            "PATCH /v1/users/me (displayName)",
            case,
            lambda: b.call("PATCH", "/v1/users/me", {"displayName": "Alice"}, who=ALICE),
            expect=(200,),
        )
        b.measure(
            "POST /v1/sessions (existing user)",
            case,
            lambda: b.call("POST", "/v1/sessions", {"phoneNumber": ALICE}),
            expect=(201,),
        )
        b.measure(
            "POST /v1/sessions (new user)",
            case,
            lambda: b.call("POST", "/v1/sessions", {"phoneNumber": _phone(2)}),
            expect=(201,),
        )
        b.measure(
            "DELETE /v1/sessions/current",
            case,
            lambda: b.call("DELETE", "/v1/sessions/current", who=ALICE),
            expect=(204,),
        )
        return b.results


def large() -> list[Measurement]:
    """A group of 200 members with 2,000 messages; its caller a member of 150 chats."""
    with mock_aws():
        b = Bench()
        members = [_phone(100 + i) for i in range(199)]
        b.token(members[0])
        chat_id = b.group(ALICE, members, name="two hundred")
        for i in range(149):  # with the group: 150 chats
            b.direct_chat(ALICE, _phone(5000 + i))
        b.load_history(chat_id, members[0], 2000)
        while b.stack.drain_streams():
            pass
        others = [_phone(6000 + i) for i in range(199)]
        _routes(
            b,
            "large: 200 members, 2,000 messages, 150 chats",
            chat_id,
            ALICE,
            direct_to=members[0],
            group_with=[members[0], *others[1:]],
        )
        b.measure(
            "PATCH /v1/users/me (displayName)",
            "large",
            lambda: b.call("PATCH", "/v1/users/me", {"displayName": "Alice"}, who=ALICE),
            expect=(200,),
        )
        return b.results


def measure() -> list[Measurement]:
    return small() + large()


if __name__ == "__main__":
    for m in measure():
        print(f"{m.operation:50} {m.case[:5]:5} {m.status} ddb={m.dynamodb} auth={m.authorizer_dynamodb}")
