"""Lambda authorizers as API Gateway judges their answers, for the HTTP and the WebSocket API.

One evaluator for both APIs, with API Gateway's rules:

- an IAM policy answer (the WebSocket API's REQUEST authorizers; the HTTP API's when
  simple responses are off) lets the call through only when no statement that matches
  ``execute-api:Invoke`` on the method ARN denies it (an explicit Deny wins) and at least
  one such statement allows it; ``Action`` and ``Resource`` take IAM wildcards (``*``,
  ``?``; actions ignore case, resources do not), and ``NotAction`` / ``NotResource``;
- an HTTP API simple response (``EnableSimpleResponses``) is ``{"isAuthorized": bool}``;
- a refusal is ``403 Forbidden``, a malformed answer ``500``, an authorizer that fails
  with the error message ``Unauthorized`` is ``401``, any other failure ``500``.

The verdict carries what API Gateway passes on to the integration: the answer's
``context`` (plus ``principalId`` for an IAM policy answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from local.specs import FunctionError

INVOKE_ACTION = "execute-api:Invoke"


@dataclass(frozen=True)
class Verdict:
    """``status`` None lets the call through with ``context``; otherwise API Gateway answers it."""

    status: int | None
    reason: str
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.status is None


def _refused(status: int, reason: str) -> Verdict:
    return Verdict(status, reason)


@lru_cache(maxsize=256)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = ".*".join(".".join(re.escape(piece) for piece in part.split("?")) for part in pattern.split("*"))
    flags = (re.IGNORECASE | re.DOTALL) if ignore_case else re.DOTALL
    return re.compile(regex, flags)


def _any_matches(patterns: Any, value: str, *, ignore_case: bool) -> bool:
    """Whether a string, or one of a list of strings, matches ``value`` as an IAM wildcard pattern."""
    items = [patterns] if isinstance(patterns, str) else patterns if isinstance(patterns, list) else []
    return any(isinstance(p, str) and _glob(p, ignore_case).fullmatch(value) for p in items)


def _applies(statement: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in statement:
        action_ok = _any_matches(statement["Action"], action, ignore_case=True)
    else:
        action_ok = "NotAction" in statement and not _any_matches(
            statement["NotAction"], action, ignore_case=True
        )
    if "Resource" in statement:
        resource_ok = _any_matches(statement["Resource"], resource, ignore_case=False)
    else:
        resource_ok = "NotResource" in statement and not _any_matches(
            statement["NotResource"], resource, ignore_case=False
        )
    return action_ok and resource_ok


def policy_allows(document: Any, resource: str, action: str = INVOKE_ACTION) -> bool:
    """IAM evaluation of one policy document: an explicit Deny wins, else an Allow is needed."""
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    effects = {
        statement.get("Effect")
        for statement in statements or []
        if isinstance(statement, dict) and _applies(statement, action, resource)
    }
    return "Allow" in effects and "Deny" not in effects


def judge_policy(answer: Any, resource: str, *, scalar_context: bool) -> Verdict:
    """An IAM policy answer (``principalId``, ``policyDocument``, ``context``).

    ``scalar_context``: context values must be strings, numbers or booleans (REST and
    WebSocket APIs; the HTTP API takes any JSON value).
    """
    if (
        not isinstance(answer, dict)
        or "principalId" not in answer
        or not isinstance(answer.get("policyDocument"), dict)
    ):
        return _refused(500, "the authorizer answered without principalId and policyDocument")
    context = answer.get("context") or {}
    if not isinstance(context, dict):
        return _refused(500, "the authorizer's context is not an object")
    if scalar_context and any(isinstance(value, dict | list) for value in context.values()):
        return _refused(500, "the authorizer's context values must be strings, numbers or booleans")
    if not policy_allows(answer["policyDocument"], resource):
        return _refused(403, "the authorizer's policy does not allow execute-api:Invoke on " + resource)
    return Verdict(None, "allowed", {"principalId": answer["principalId"], **context})


def judge_simple(answer: Any) -> Verdict:
    """An HTTP API simple response: ``{"isAuthorized": bool, "context": {...}}``."""
    if not isinstance(answer, dict) or not isinstance(answer.get("isAuthorized"), bool):
        return _refused(500, "the authorizer's simple response has no boolean isAuthorized")
    context = answer.get("context") or {}
    if not isinstance(context, dict):
        return _refused(500, "the authorizer's context is not an object")
    if not answer["isAuthorized"]:
        return _refused(403, "the authorizer answered isAuthorized false")
    return Verdict(None, "allowed", dict(context))


def judge_failure(error: FunctionError) -> Verdict:
    """An authorizer that raised: ``Unauthorized`` is a 401, anything else a 500."""
    if error.error_message == "Unauthorized":
        return _refused(401, "the authorizer raised Unauthorized")
    return _refused(500, f"the authorizer failed: {error.error_type}: {error.error_message}")
