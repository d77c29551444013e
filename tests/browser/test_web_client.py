"""The web client (web/) in a real browser, against the local stack.

Headless Chromium from Debian's package (``make browser`` installs it; ``make test`` does
when it is missing and it runs as root, as on CI), driven by Playwright, which never downloads
a browser of its own. Without the browser (``CHATFLOW_CHROMIUM``, default /usr/bin/chromium)
every test here is skipped and says why, before any stack starts; on CI (``CI`` set) they
fail instead. One
stack (AuthMode otp: codes are read from the fake SMS provider's outbox) and one browser
serve every test of this module; each test signs its own users in, each user in a browser
context of its own (its own localStorage, as two people on two devices).

The tests share one xdist worker (``xdist_group``, ``make unit`` runs ``--dist loadgroup``).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import (
    Browser,
    FilePayload,
    Locator,
    Page,
    Route,
    WebSocket,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from local.stack_server import StackServer
from local.template import ROOT
from tests.local.conftest import Lines, eventually, free_config, http

pytestmark = pytest.mark.xdist_group("browser")

# Debian's chromium; another build may be named for a try (Playwright speaks to any Chromium).
CHROMIUM = Path(os.environ.get("CHATFLOW_CHROMIUM", "/usr/bin/chromium"))
OPERATOR = "+14155550190"
TIMEOUT_MS = 15_000
CODE = re.compile(r"\b(\d{6})\b")
# Assertions wait as long as actions do: Playwright's own default for expect() is 5 s, and on a
# busy 2-core machine the first WebSocket connect (two cold functions: the authorizer and
# $connect's) can take longer than that. This is how long the page may take, not a target.
expect.set_options(timeout=TIMEOUT_MS)

NewPage = Callable[..., Page]


def missing_browser(chromium: Path, *, root: bool) -> str | None:
    """Why the browser tests cannot run here, with what to do; None when they can."""
    if os.access(chromium, os.X_OK):
        return None
    if root:
        return f"Debian's chromium is not installed ({chromium} is missing): run `make browser`"
    return (
        f"Debian's chromium is not installed ({chromium} is missing) and installing it needs root: "
        "run `sudo apt-get install chromium` or `make browser` as root"
    )


@pytest.fixture(scope="module", autouse=True)
def chromium() -> Path:
    """The browser, checked before anything else of this module starts (autouse, module scope)."""
    reason = missing_browser(CHROMIUM, root=os.geteuid() == 0)
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the browser tests)")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackServer]:
    config = free_config(
        tmp_path_factory.mktemp("browser-state"),
        persist=False,
        auth_mode="otp",
        operators=OPERATOR,
        static_dir=ROOT / "web",
        # An offline member's SMS forward after 1 s rather than the default 60. Few SMS sends
        # at once (2 invocations of 2): a campaign send that finds its second full waits at
        # most in-flight / ratePerSecond (docs/campaigns.md), 4 s at 1 SMS a second, not 50 s.
        parameters={"ForwardAfterSeconds": "1", "SmsMaxConcurrency": "2", "SmsBatchConcurrency": "2"},
    )
    with StackServer(config, log=Lines()) as server:
        yield server


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium))
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[NewPage]:
    """Pages, each in a browser context of its own; a JavaScript error fails the test."""
    contexts = []
    errors: list[str] = []

    def make(width: int = 1100, height: int = 750) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def app_url(stack: StackServer) -> str:
    """The page, told where the WebSocket API is (its port is not 3000 + 1 here)."""
    ws = urllib.parse.quote(stack.outputs["WebSocketUrl"], safe="")
    return f"{stack.outputs['HttpApiUrl']}/?ws={ws}"


def outbox(stack: StackServer, phone: str) -> list[str]:
    status, body = http("GET", f"{stack.outputs['SmsProviderUrl']}/messages?to={urllib.parse.quote(phone)}")
    assert status == 200, body
    return [str(item["text"]) for item in body["items"]]


def sign_in(stack: StackServer, page: Page, phone: str) -> None:
    page.goto(app_url(stack))
    sent_before = len(outbox(stack, phone))
    page.get_by_label("Your phone number").fill(phone)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_label("Code")).to_be_visible()
    # The newest text with a code (a chat message forwarded by SMS may arrive meanwhile)
    codes = eventually(
        lambda: [m.group(1) for m in map(CODE.search, outbox(stack, phone)[sent_before:]) if m], timeout=15
    )
    page.get_by_label("Code").fill(codes[-1])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Chats")).to_be_visible()
    expect(page.locator(".connection")).to_have_text("Live")


def open_direct_chat(page: Page, phone: str) -> None:
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Their phone number").fill(phone)
    page.get_by_role("button", name="Start chat").click()
    expect(page.get_by_label("Message", exact=True)).to_be_focused()


def send(page: Page, text: str) -> None:
    composer = page.get_by_label("Message", exact=True)
    composer.fill(text)
    composer.press("Enter")


def a_message_on_the_chat_list(
    stack: StackServer, new_page: NewPage, sender: str, reader: str, text: str
) -> tuple[Page, Page, Locator]:
    """``sender`` writes ``text`` to ``reader``, who then signs in on a page of their own: both
    pages, and the chat's item on the reader's chat list once it shows ``text``."""
    writing = new_page()
    sign_in(stack, writing, sender)
    open_direct_chat(writing, reader)
    send(writing, text)
    reading = new_page()
    sign_in(stack, reading, reader)
    item = reading.locator(".chat-item", has_text=sender)
    expect(item).to_contain_text(text)
    return writing, reading, item


def search(page: Page, words: str, expected: str) -> Locator:
    """Search until ``expected`` is among the results: the index follows the chats table's
    stream, so a message sent a moment ago may not be found yet (as for a person, who
    would search again)."""
    page.get_by_label("Search messages").fill(words)
    result = page.locator(".result", has_text=expected)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        page.get_by_role("button", name="Search").click()
        expect(page.locator(".search-results")).to_contain_text(re.compile("found"))
        if result.count() or time.monotonic() > deadline:
            return result
        page.wait_for_timeout(250)


def test_an_invalid_phone_number_is_refused_in_plain_words(stack: StackServer, new_page: NewPage) -> None:
    # Given the sign-in page
    page = new_page()
    page.goto(app_url(stack))

    # When a number that cannot be one is typed
    page.get_by_label("Your phone number").fill("12")
    page.get_by_role("button", name="Continue").click()

    # Then the API's explanation is shown, and no code is asked for
    expect(page.get_by_role("alert")).to_contain_text("not a valid phone number")
    expect(page.get_by_label("Your phone number")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Code")).to_have_count(0)


def test_a_message_typed_by_one_user_appears_on_the_others_page(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given two people signed in on two devices, B on a phone-sized screen
    alice, bob = "+14155550191", "+14155550192"
    a, b = new_page(), new_page(width=390, height=760)
    sign_in(stack, a, alice)
    sign_in(stack, b, bob)

    # When A opens a chat with B and types a message
    open_direct_chat(a, bob)
    send(a, "Hello Bob, it's Alice")

    # Then A sees it at once, then stored (a tick)
    mine = a.locator(".message.mine", has_text="Hello Bob, it's Alice")
    expect(mine).to_have_count(1)
    expect(mine.locator(".ticks")).to_have_attribute("data-status", re.compile("sent|delivered|read"))

    # And it reaches B's page through the WebSocket (B never reloads): the new chat, unread
    item = b.locator(".chat-item", has_text=alice)
    expect(item).to_contain_text("Hello Bob, it's Alice")
    expect(item.locator(".badge")).to_have_text("1")
    expect(mine.locator(".ticks")).to_have_attribute("data-status", re.compile("delivered|read"))

    # And when B opens it, B reads it, and A's tick says so
    item.click()
    expect(b.locator(".message.theirs")).to_have_text(re.compile("Hello Bob, it's Alice"))
    expect(mine.locator(".ticks")).to_have_attribute("data-status", "read")

    # And while B types an answer, A sees it typing; the answer comes back to A once
    b.get_by_label("Message", exact=True).fill("Hi Alice!")
    expect(a.locator(".chat-subtitle")).to_have_text("typing…")
    b.get_by_label("Message", exact=True).press("Enter")
    expect(a.locator(".message.theirs", has_text="Hi Alice!")).to_have_count(1)
    expect(b.locator(".message.mine", has_text="Hi Alice!")).to_have_count(1)
    expect(a.locator(".chat-subtitle")).not_to_have_text("typing…")


def test_messages_missed_while_disconnected_are_caught_up_after_reconnecting(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given B's WebSocket connections go through a switch the test controls
    carol, dave = "+14155550193", "+14155550194"
    network = {"down": False}

    def route(ws: WebSocketRoute) -> None:
        if network["down"]:
            ws.close(code=1011, reason="network down")  # the connection attempt fails
        else:
            ws.connect_to_server()

    def route_http(request: Route) -> None:
        # The network is down for HTTP too: a reconnect attempt that the page sees open
        # for an instant must not catch up over HTTP before the network is back
        if network["down"]:
            request.abort("internetdisconnected")
        else:
            request.continue_()

    assert stack.websocket is not None
    gateway = stack.websocket
    a, b = new_page(), new_page()
    b.route_web_socket(re.compile(r"^wss?://"), route)
    b.route(re.compile(r"/v1/"), route_http)
    sign_in(stack, a, carol)
    others = set(gateway.connection_ids())
    sign_in(stack, b, dave)
    daves = set(gateway.connection_ids()) - others
    open_direct_chat(a, dave)
    send(a, "before the cut")
    b.locator(".chat-item", has_text=carol).click()
    expect(b.locator(".message.theirs", has_text="before the cut")).to_be_visible()
    expect(a.locator(".message.mine .ticks[data-status=read]")).to_have_count(1)  # B's receipt is in

    # When B's connection drops (closed by the server), and messages are sent while B
    # cannot reconnect
    network["down"] = True
    for connection_id in daves:
        # The @connections API of the local gateway (any stage: the path's first part is not checked)
        target = f"http://127.0.0.1:{gateway.port}/@connections/{urllib.parse.quote(connection_id, safe='')}"
        assert http("DELETE", target)[0] == 204
    expect(b.locator(".connection")).not_to_have_text("Live")
    expect(a.locator(".chat-subtitle")).to_contain_text("last seen")  # a presence frame
    for i in range(3):
        send(a, f"while B was away {i}")
    expect(a.locator(".message.mine .ticks[data-status=sent]")).to_have_count(3)
    b.wait_for_timeout(500)
    expect(b.locator(".message.theirs")).to_have_count(1)

    # Then once it reconnects (the network is back: no waiting for the next backoff step),
    # B has every message, in order, with no gap and no duplicate
    network["down"] = False
    b.evaluate("window.dispatchEvent(new Event('online'))")
    expect(b.locator(".connection")).to_have_text("Live")
    expect(b.locator(".message.theirs")).to_have_count(4)
    seqs = b.locator(".message").evaluate_all("items => items.map(item => Number(item.dataset.seq))")
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    texts = b.locator(".message .text").all_inner_texts()
    assert texts == ["before the cut"] + [f"while B was away {i}" for i in range(3)]
    expect(a.locator(".chat-subtitle")).to_have_text("online")


def test_search_finds_a_message_and_opens_its_chat(stack: StackServer, new_page: NewPage) -> None:
    # Given a user who wrote in two chats (to numbers that have no account yet)
    page = new_page()
    sign_in(stack, page, "+14155550196")
    open_direct_chat(page, "+14155550197")
    send(page, "the blue umbrella is in the hall")
    open_direct_chat(page, "+14155550198")
    send(page, "lunch at noon?")
    expect(page.locator(".message.mine .ticks[data-status=sent]")).to_have_count(1)

    # When they search for words of the first message (a word prefix too)
    result = search(page, "umbrel hall", "the blue umbrella is in the hall")

    # Then it is found, and the result opens its chat
    expect(result).to_have_count(1)
    result.click()
    expect(page.locator(".chat-title")).to_have_text("+14155550197")
    expect(page.locator(".message.highlight")).to_have_text(re.compile("the blue umbrella"))


def test_an_operator_runs_a_campaign_from_the_campaigns_page(stack: StackServer, new_page: NewPage) -> None:
    # Given an operator signed in
    page = new_page()
    sign_in(stack, page, OPERATOR)

    # When they create a campaign and upload a CSV with two good rows and a bad one
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_label("Name", exact=True).fill("Renewals")
    page.get_by_label("Message template").fill("Hi {{first_name}}, your plan renews soon.")
    page.get_by_role("button", name="Create campaign").click()
    expect(page.get_by_role("heading", name="Renewals")).to_be_visible()
    csv = "iccid,first_name\n89440000000000000001,Ann\n89440000000000000002,Bob\n123,Short\n"
    upload: FilePayload = {"name": "recipients.csv", "mimeType": "text/csv", "buffer": csv.encode()}
    page.get_by_label("CSV file").set_input_files(files=upload)
    page.get_by_role("button", name="Upload").click()

    # Then the upload's result is shown, the bad row with its reason
    expect(page.get_by_role("heading", name="Upload of recipients.csv: accepted")).to_be_visible()
    expect(page.locator("[data-upload=accepted]")).to_have_text("2")
    expect(page.locator("[data-upload=invalidRows]")).to_have_text("1")
    expect(page.locator(".row-errors")).to_contain_text("123")

    # And the live counts reach the total: nothing left queued
    expect(page.locator("[data-count=total]")).to_have_text("2")
    expect(page.locator("[data-count=queued]")).to_have_text("0")
    expect(page.locator(".campaign-status")).to_have_text("Status: completed")


def test_an_operator_pauses_resumes_and_cancels_a_campaign_from_its_page(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given an operator who creates a campaign at 1 SMS per second, and uploads 10 recipients
    page = new_page()
    sign_in(stack, page, OPERATOR)
    page.get_by_role("link", name="Campaigns").click()
    page.get_by_label("Name", exact=True).fill("Slow drip")
    page.get_by_label("Message template").fill("Hi {{first_name}}")
    page.get_by_label("At most SMS per second (optional)").fill("1")
    # (quiet hours far from the UK's time now: these UK SIMs are not held by them)
    quiet = datetime.now(ZoneInfo("Europe/London")) + timedelta(hours=6)
    quiet_from, quiet_to = quiet.strftime("%H:%M"), (quiet + timedelta(minutes=1)).strftime("%H:%M")
    page.get_by_label("No SMS from").fill(quiet_from)
    page.get_by_label("until").fill(quiet_to)
    page.get_by_role("button", name="Create campaign").click()
    expect(page.get_by_role("heading", name="Slow drip")).to_be_visible()
    expect(page.get_by_text("At most 1 SMS per second.")).to_be_visible()
    expect(page.get_by_text(f"Quiet hours: no SMS from {quiet_from} to {quiet_to}")).to_be_visible()
    rows = "".join(f"89440000000000009{i:03d},P{i}\n" for i in range(10))
    upload: FilePayload = {
        "name": "drip.csv",
        "mimeType": "text/csv",
        "buffer": f"iccid,first_name\n{rows}".encode(),
    }
    page.get_by_label("CSV file").set_input_files(files=upload)
    page.get_by_role("button", name="Upload").click()
    expect(page.locator(".campaign-status")).to_have_text("Status: sending")
    expect(page.locator(".campaign-estimate")).to_have_text(
        "Estimate: 10 messages, 10 SMS parts (GSM-7: 10, UCS-2: 0)"
    )

    # When they pause it
    page.get_by_role("button", name="Pause").click()

    # Then it shows paused, offers Resume, and the provider gets nothing more while it is paused
    expect(page.locator(".campaign-status")).to_have_text("Status: paused")
    expect(page.get_by_role("button", name="Pause")).to_be_hidden()
    prefix = "89440000000000009"
    sent_at_pause = len([m for m in all_outbox(stack) if m.startswith(prefix)])
    page.wait_for_timeout(3000)  # a stretch of time with the campaign paused
    assert len([m for m in all_outbox(stack) if m.startswith(prefix)]) <= sent_at_pause + 1  # one in flight

    # When they resume it, it sends again; when they cancel it, the rest end cancelled
    page.get_by_role("button", name="Resume").click()
    expect(page.locator(".campaign-status")).to_have_text("Status: sending")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel campaign").click()
    expect(page.locator(".campaign-status")).to_have_text("Status: cancelled")
    expect(page.locator("[data-count=queued]")).to_have_text("0", timeout=60_000)
    expect(page.get_by_role("button", name="Resume")).to_be_hidden()
    cancelled = int(page.locator("[data-count=cancelled]").inner_text())
    assert 0 < cancelled < 10


def all_outbox(stack: StackServer) -> list[str]:
    """The destinations of every message the fake provider accepted."""
    status, body = http("GET", f"{stack.outputs['SmsProviderUrl']}/messages")
    assert status == 200, body
    return [str(item["to"]) for item in body["items"]]


def test_the_new_campaign_form_previews_the_template_as_it_is_typed(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given an operator on the campaigns page
    page = new_page()
    sign_in(stack, page, OPERATOR)
    page.get_by_role("link", name="Campaigns").click()
    preview = page.locator(".campaign-preview")

    # When they type a template, then one with an emoji, then a malformed one
    page.get_by_label("Message template").fill("Hi {{first_name}}, your plan renews soon.")
    expect(preview).to_contain_text("Preview: Hi first_name, your plan renews soon.")
    expect(preview).to_contain_text("GSM-7 · 1 SMS part · 37 characters")
    page.get_by_label("Message template").fill("Hi {{first_name}} 🎉")
    expect(preview).to_contain_text("UCS-2 · 1 SMS part")
    page.get_by_label("Message template").fill("Hi {{first_name")

    # Then each shows what the recipient gets and how it travels, or where the template is wrong
    expect(preview).to_contain_text("line 1, column 4")


def test_a_user_who_is_not_an_operator_has_no_campaigns_page(stack: StackServer, new_page: NewPage) -> None:
    # Given someone without the operator role signed in
    page = new_page()
    sign_in(stack, page, "+14155550195")

    # Then the Campaigns link is not there
    expect(page.get_by_role("link", name="Chats")).to_be_visible()
    expect(page.get_by_role("link", name="Campaigns")).to_be_hidden()

    # And going to its address says why and shows the chats instead
    page.goto(f"{stack.outputs['HttpApiUrl']}/#/campaigns")
    expect(page.get_by_role("alert")).to_contain_text("operators only")
    expect(page.get_by_role("heading", name="Campaigns")).to_have_count(0)
    expect(page.get_by_role("heading", name="Chats")).to_be_visible()


def test_a_contact_already_online_shows_online_when_the_page_opens(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given Erin online (her page open) in a chat with Frank, before Frank opens his page
    # When Frank signs in (no presence frame about Erin will come: she changes nothing)
    erin, frank = "+14155550195", "+14155550196"
    _, f, item = a_message_on_the_chat_list(stack, new_page, erin, frank, "Are you there?")

    # Then his chat list and the chat say she is online, from GET /v1/chats/{id}/presence
    expect(item.locator(".online-dot")).to_have_count(1)
    item.click()
    expect(f.locator(".chat-subtitle")).to_have_text("online")


def test_a_click_on_a_chat_opens_it_even_if_the_list_changes_under_the_pointer(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given Gina's chat list, with a chat from Hank
    gina, hank = "+14155550197", "+14155550198"
    h, g, item = a_message_on_the_chat_list(stack, new_page, hank, gina, "First")

    # When she presses on it, a message arrives and the item is redrawn, then she lets go
    box = item.bounding_box()
    assert box is not None
    g.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    g.mouse.down()
    send(h, "Second")
    expect(item).to_contain_text("Second")
    g.mouse.up()

    # Then the chat opens: the click was not lost with the redrawn parts of the item
    expect(g.locator(".chat-title")).to_have_text(hank)
    expect(g.locator(".message", has_text="Second")).to_have_count(1)


def test_a_reply_by_sms_shows_via_sms(stack: StackServer, new_page: NewPage) -> None:
    # Given Alice in the app, writing to a number that has no app (forwarded by SMS)
    alice, bob = "+14155550181", "+14155550182"
    page = new_page()
    sign_in(stack, page, alice)
    open_direct_chat(page, bob)
    send(page, "Are you coming tonight?")
    eventually(lambda: [t for t in outbox(stack, bob) if "Are you coming tonight?" in t], timeout=30)
    table = stack.outputs["ConnectionsTableName"]
    key = {"PK": {"S": f"SMSROUTE#{bob}"}, "SK": {"S": "SMSROUTE"}}
    dynamodb = stack.client("dynamodb")

    def routed() -> Any:  # where the number's replies go, once the forward's SmsSent is recorded
        return dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    eventually(routed, timeout=30)

    # When the number answers the SMS from its handset
    status, delivered = http(
        "POST", f"{stack.outputs['SmsProviderUrl']}/inbound", {"from": bob, "text": "Yes, on my way"}
    )
    assert status == 202, delivered

    # Then Alice's page shows the answer, labelled as an SMS reply; her own message is not
    theirs = page.locator(".message.theirs", has_text="Yes, on my way")
    expect(theirs.locator(".via-sms")).to_have_text("via SMS")
    expect(page.locator(".message.mine .via-sms")).to_have_count(0)


# ---- the outbox, Retry and delivered receipts (issue 15, item 5) ------------------------------


class ApiSwitch:
    """A page's way to the API, through a switch the test controls: when ``down``, HTTP requests
    to /v1/ fail as with no network and WebSocket connections are refused (the page itself still
    loads: a reload works, as with an app shell the browser keeps). Sends (POST .../messages)
    that reach the server are recorded, and the next ones can be answered otherwise: ``refuse``
    (a 400 the server never saw), ``rate_limited`` (a 429 with Retry-After 1), ``server_error``
    (a 503), ``lose_answer`` (the server stores it; the answer never comes back)."""

    def __init__(self, page: Page) -> None:
        self.down = False
        self.next: list[str] = []
        self.sent: list[dict[str, str]] = []  # bodies of the sends that reached the server
        self.tries: list[tuple[str, str]] = []  # (how it was answered, clientMessageId) of every send
        page.route(re.compile(r"/v1/"), self.http)
        page.route_web_socket(re.compile(r"^wss?://"), self.websocket)

    def http(self, route: Route) -> None:
        request = route.request
        if self.down:
            route.abort("internetdisconnected")
            return
        if request.method != "POST" or not request.url.endswith("/messages"):
            route.continue_()
            return
        body: dict[str, str] = request.post_data_json or {}
        answer = self.next.pop(0) if self.next else "pass"
        self.tries.append((answer, body.get("clientMessageId", "")))
        if answer == "refuse":
            refused = "The message was refused: change it and try again."
            problem = {"code": "validation_error", "message": refused}
            route.fulfill(status=400, json={"error": problem})
        elif answer == "rate_limited":
            problem = {"code": "rate_limited", "message": "Too many messages: wait a second."}
            route.fulfill(status=429, headers={"retry-after": "1"}, json={"error": problem})
        elif answer == "server_error":
            problem = {"code": "internal_error", "message": "Something went wrong on our side."}
            route.fulfill(status=503, json={"error": problem})
        elif answer == "lose_answer":
            self.sent.append(body)
            route.fetch()  # the server stores it...
            route.abort("connectionreset")  # ...and the answer is lost on the way back
        else:
            self.sent.append(body)
            route.continue_()

    def websocket(self, ws: WebSocketRoute) -> None:
        if self.down:
            ws.close(code=1011, reason="network down")
        else:
            ws.connect_to_server()

    def restore(self, page: Page) -> None:
        """The network is back (the browser says so: no waiting for the next backoff step)."""
        self.down = False
        page.evaluate("window.dispatchEvent(new Event('online'))")


def session_token(page: Page) -> str:
    return str(page.evaluate("() => JSON.parse(localStorage.getItem('chatflow.session')).token"))


def stored_outbox(page: Page, phone: str) -> list[dict[str, str]]:
    data = page.evaluate("key => JSON.parse(localStorage.getItem(key) || 'null')", f"chatflow.outbox.{phone}")
    return [] if data is None else list(data["entries"])


def open_chat_id(page: Page) -> str:
    return urllib.parse.unquote(str(page.evaluate("() => location.hash")).split("/")[2])


def history(stack: StackServer, page: Page, chat_id: str) -> list[dict[str, Any]]:
    """The chat's messages as the API has them (oldest first), read outside the browser."""
    url = f"{stack.outputs['HttpApiUrl']}/v1/chats/{urllib.parse.quote(chat_id)}/messages?limit=100"
    status, body = http("GET", url, headers={"authorization": f"Bearer {session_token(page)}"})
    assert status == 200, body
    return list(reversed(body["items"]))


def test_unsent_messages_survive_a_reload_while_offline_and_are_sent_once_when_back(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given Gina in a chat with Hank, one message already sent
    gina, hank = "+14155550161", "+14155550162"
    page = new_page()
    network = ApiSwitch(page)
    sign_in(stack, page, gina)
    open_direct_chat(page, hank)
    send(page, "before the cut")
    expect(page.locator(".message.mine .ticks[data-status=sent]")).to_have_count(1)
    chat_id = open_chat_id(page)

    # When the network goes down and she writes two messages
    network.down = True
    send(page, "written offline 1")
    send(page, "written offline 2")

    # Then they show at once, waiting, and are kept in the browser (localStorage)
    expect(page.locator(".message.mine .ticks[data-status=waiting]")).to_have_count(2)
    kept = stored_outbox(page, gina)
    assert [entry["text"] for entry in kept] == ["written offline 1", "written offline 2"]
    ids = [entry["clientMessageId"] for entry in kept]
    mine = page.locator(".message.mine")
    assert mine.evaluate_all("items => items.map(item => item.dataset.clientMessageId)")[1:] == ids

    # And after a reload, still without network, the chat shows them again, waiting
    page.reload()
    expect(page.locator(".connection")).not_to_have_text("Live")
    for text in ("written offline 1", "written offline 2"):
        pending = page.locator(".message.mine", has_text=text)
        expect(pending).to_have_count(1)
        expect(pending.locator(".ticks")).to_have_attribute("data-status", re.compile("waiting|sending"))
    assert len(network.sent) == 1  # nothing reached the server while down

    # When the network comes back
    network.restore(page)

    # Then each is sent once, with the clientMessageId it was written with, and the outbox empties
    expect(page.locator(".connection")).to_have_text("Live")
    expect(page.locator(".message.mine .ticks[data-status=sent]")).to_have_count(3)
    eventually(lambda: not stored_outbox(page, gina), timeout=15)
    texts = ["before the cut", "written offline 1", "written offline 2"]
    expect(page.locator(".message .text")).to_have_text(texts)
    assert [body["clientMessageId"] for body in network.sent[1:]] == ids  # once each, in order
    assert mine.evaluate_all("items => items.map(item => item.dataset.clientMessageId)")[1:] == ids

    # And the API holds each once (no duplicate in the history), in the order written
    stored = history(stack, page, chat_id)
    assert [m["text"] for m in stored] == texts
    assert [m["clientMessageId"] for m in stored[1:]] == ids
    assert [m["seq"] for m in stored] == [1, 2, 3]


def test_a_refused_message_shows_failed_and_retry_sends_it_once(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given Ivy in a chat (with a number that has no account yet)
    ivy = "+14155550163"
    page = new_page()
    network = ApiSwitch(page)
    sign_in(stack, page, ivy)
    open_direct_chat(page, "+14155550164")
    chat_id = open_chat_id(page)

    # When the API refuses her message (a 4xx that is not 408 or 429)
    network.next = ["refuse"]
    send(page, "refused at first")

    # Then it says Failed with a Retry button, and the reason; it stays failed after a reload
    message = page.locator(".message.mine", has_text="refused at first")
    expect(message.locator(".ticks")).to_have_attribute("data-status", "failed")
    expect(message).to_contain_text("Failed")
    expect(page.get_by_role("alert")).to_contain_text("The message was refused")
    page.reload()
    expect(page.locator(".connection")).to_have_text("Live")
    expect(message.locator(".ticks")).to_have_attribute("data-status", "failed")
    page.wait_for_timeout(500)
    assert network.sent == []  # a failed message waits for Retry: nothing was sent by itself
    [kept] = stored_outbox(page, ivy)

    # When she presses Retry
    message.get_by_role("button", name="Retry").click()

    # Then it is sent once, with the same clientMessageId, and is stored once
    expect(message.locator(".ticks")).to_have_attribute("data-status", "sent")
    expect(message).not_to_contain_text("Failed")
    assert [body["clientMessageId"] for body in network.sent] == [kept["clientMessageId"]]
    assert [m["text"] for m in history(stack, page, chat_id)] == ["refused at first"]

    # And an answer lost on the way back, or a 429, is retried (same clientMessageId), never failed
    network.next = ["lose_answer", "rate_limited"]
    send(page, "answer lost once")
    lost = page.locator(".message.mine", has_text="answer lost once")
    expect(lost.locator(".ticks")).to_have_attribute("data-status", "sent")
    network.next = ["rate_limited"]
    send(page, "slowed down once")
    slowed = page.locator(".message.mine", has_text="slowed down once")
    expect(slowed.locator(".ticks")).to_have_attribute("data-status", "sent")
    expect(page.locator(".message.failed")).to_have_count(0)
    written = ["refused at first", "answer lost once", "slowed down once"]
    expect(page.locator(".message .text")).to_have_text(written)
    assert [m["text"] for m in history(stack, page, chat_id)] == written
    assert not stored_outbox(page, ivy)


def test_a_message_the_server_keeps_failing_shows_failed_after_three_tries(
    stack: StackServer, new_page: NewPage
) -> None:
    # Given Lea in a chat, and a server that answers her next three sends with 503
    lea = "+14155550167"
    page = new_page()
    network = ApiSwitch(page)
    sign_in(stack, page, lea)
    open_direct_chat(page, "+14155550168")
    chat_id = open_chat_id(page)
    network.next = ["server_error"] * 3

    # When she sends a message
    send(page, "three times unlucky")

    # Then it is tried three times (waiting between tries), then says Failed with Retry
    message = page.locator(".message.mine", has_text="three times unlucky")
    expect(message.locator(".ticks")).to_have_attribute("data-status", "failed")
    expect(message).to_contain_text("Failed")
    [kept] = stored_outbox(page, lea)
    assert kept["state"] == "failed"
    assert network.tries == [("server_error", kept["clientMessageId"])] * 3
    page.wait_for_timeout(500)
    assert len(network.tries) == 3  # a failed message waits for Retry

    # And Retry stores it once, with the same clientMessageId
    message.get_by_role("button", name="Retry").click()
    expect(message.locator(".ticks")).to_have_attribute("data-status", "sent")
    assert [body["clientMessageId"] for body in network.sent] == [kept["clientMessageId"]]
    assert [m["text"] for m in history(stack, page, chat_id)] == ["three times unlucky"]
    assert not stored_outbox(page, lea)


def test_delivered_receipts_reach_the_sender(stack: StackServer, new_page: NewPage) -> None:
    # Given Jack and Kim signed in, Kim on her chat list (no chat open); her socket's frames recorded
    jack, kim = "+14155550165", "+14155550166"
    j, k = new_page(), new_page()
    receipts: list[dict[str, object]] = []

    def record(ws: WebSocket) -> None:
        def sent(payload: str | bytes) -> None:
            frame = json.loads(payload)
            if frame.get("action") == "receipt":
                receipts.append(frame)

        ws.on("framesent", sent)

    k.on("websocket", record)
    sign_in(stack, j, jack)
    sign_in(stack, k, kim)

    # When Jack sends her four messages
    open_direct_chat(j, kim)
    for i in range(4):
        send(j, f"burst {i}")

    # Then they reach Kim's page, whose client acknowledges them: Jack sees each delivered (not read)
    expect(k.locator(".chat-item", has_text=jack)).to_contain_text("burst 3")
    ticks = j.locator(".message.mine .ticks")
    expect(ticks).to_have_count(4)
    for i in range(4):
        expect(ticks.nth(i)).to_have_attribute("data-status", "delivered")

    # And her delivered receipts only moved forward, up to the last message (at most one per message)
    delivered = [int(str(r["upToSeq"])) for r in receipts if r["type"] == "delivered"]
    assert delivered, receipts
    assert delivered[-1] == 4, receipts
    assert delivered == sorted(set(delivered)), receipts
    assert len(delivered) <= 4, receipts

    # And once she opens the chat, Jack sees them read
    k.locator(".chat-item", has_text=jack).click()
    for i in range(4):
        expect(ticks.nth(i)).to_have_attribute("data-status", "read")
    assert any(r["type"] == "read" and r["upToSeq"] == 4 for r in receipts), receipts
