"""The one authorizer evaluator of the local HTTP and WebSocket APIs: API Gateway's IAM rules."""

from __future__ import annotations

from typing import Any

import pytest

from local.authorizer import judge_failure, judge_policy, judge_simple, policy_allows
from local.specs import FunctionError

ARN = "arn:aws:execute-api:us-east-1:123456789012:api123/dev/$connect"


def statement(effect: str, action: Any = "execute-api:Invoke", resource: Any = ARN) -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource}


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def answer(policy: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"principalId": "user-1", "policyDocument": policy, **extra}


# --- IAM policies ------------------------------------------------------------------------------


def test_an_allow_on_the_method_arn_allows() -> None:
    assert policy_allows(document(statement("Allow")), ARN)


def test_an_explicit_deny_wins_over_an_allow() -> None:
    # Given a policy that allows everything and denies this method
    policy = document(statement("Allow", resource="*"), statement("Deny"))

    # When it is judged, Then the Deny wins
    assert not policy_allows(policy, ARN)


def test_without_a_matching_allow_the_call_is_denied() -> None:
    # Given a policy whose only Allow is for another route
    policy = document(statement("Allow", resource=ARN.replace("$connect", "other")))

    # When it is judged, Then nothing allows this method
    assert not policy_allows(policy, ARN)


def test_an_empty_policy_denies() -> None:
    assert not policy_allows(document(), ARN)


def test_a_deny_for_another_resource_does_not_matter() -> None:
    policy = document(statement("Allow"), statement("Deny", resource=ARN.replace("dev", "prod")))
    assert policy_allows(policy, ARN)


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:execute-api:us-east-1:123456789012:api123/*",
        "arn:aws:execute-api:*:*:api123/dev/*",
        "arn:aws:execute-api:us-east-1:123456789012:api123/de?/$connect",
        ["arn:aws:execute-api:us-east-1:123456789012:other/*", ARN],
    ],
)
def test_resource_wildcards_and_lists_match(resource: Any) -> None:
    assert policy_allows(document(statement("Allow", resource=resource)), ARN)


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:execute-api:us-east-1:123456789012:api123/prod/*",
        "arn:aws:execute-api:us-east-1:123456789012:API123/dev/$connect",
        "arn:aws:execute-api:us-east-1:123456789012:api123/d?/$connect",
    ],
)
def test_resources_that_do_not_match_allow_nothing(resource: str) -> None:
    # (resources are case-sensitive; ? stands for exactly one character)
    assert not policy_allows(document(statement("Allow", resource=resource)), ARN)


@pytest.mark.parametrize(
    "action", ["execute-api:*", "*", "EXECUTE-API:invoke", ["s3:GetObject", "execute-api:Invoke"]]
)
def test_action_wildcards_case_and_lists_match(action: Any) -> None:
    assert policy_allows(document(statement("Allow", action=action)), ARN)


def test_an_allow_of_another_action_allows_nothing() -> None:
    assert not policy_allows(document(statement("Allow", action="execute-api:ManageConnections")), ARN)


def test_not_action_and_not_resource_apply_to_everything_else() -> None:
    # Given an Allow for everything but ManageConnections, and a Deny for everything but this method
    allow = {"Effect": "Allow", "NotAction": "execute-api:ManageConnections", "Resource": "*"}
    deny_others = {"Effect": "Deny", "Action": "*", "NotResource": ARN}

    # When the policy is judged, Then Invoke on this method is allowed
    assert policy_allows(document(allow, deny_others), ARN)


def test_a_single_statement_object_is_accepted() -> None:
    assert policy_allows({"Statement": statement("Allow")}, ARN)


# --- answers -----------------------------------------------------------------------------------


def test_an_allowing_policy_answer_passes_the_principal_and_context_on() -> None:
    verdict = judge_policy(
        answer(document(statement("Allow")), context={"userId": "u1"}), ARN, scalar_context=True
    )
    assert verdict.allowed
    assert verdict.context == {"principalId": "user-1", "userId": "u1"}


def test_a_denying_policy_answer_is_403() -> None:
    verdict = judge_policy(answer(document(statement("Deny"))), ARN, scalar_context=True)
    assert (verdict.allowed, verdict.status) == (False, 403)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "Allow",
        {"policyDocument": document(statement("Allow"))},
        {"principalId": "u", "policyDocument": "Allow"},
        {"principalId": "u", "policyDocument": document(statement("Allow")), "context": ["x"]},
    ],
)
def test_a_malformed_policy_answer_is_500(bad: Any) -> None:
    assert judge_policy(bad, ARN, scalar_context=False).status == 500


def test_object_context_values_are_500_where_only_scalars_are_allowed() -> None:
    # Given an allowing answer whose context has an object value
    reply = answer(document(statement("Allow")), context={"user": {"id": "u1"}})

    # When it is judged for the WebSocket API (scalars only) and for the HTTP API (any JSON)
    # Then only the WebSocket API refuses it
    assert judge_policy(reply, ARN, scalar_context=True).status == 500
    assert judge_policy(reply, ARN, scalar_context=False).allowed


def test_a_simple_response_true_allows_with_its_context() -> None:
    verdict = judge_simple({"isAuthorized": True, "context": {"phoneNumber": "+1"}})
    assert verdict.allowed
    assert verdict.context == {"phoneNumber": "+1"}


def test_a_simple_response_false_is_403() -> None:
    assert judge_simple({"isAuthorized": False}).status == 403


@pytest.mark.parametrize("bad", [None, {}, {"isAuthorized": "true"}, {"isAuthorized": True, "context": "x"}])
def test_a_malformed_simple_response_is_500(bad: Any) -> None:
    assert judge_simple(bad).status == 500


@pytest.mark.parametrize(("message", "status"), [("Unauthorized", 401), ("database down", 500)])
def test_an_authorizer_that_raises_is_401_for_unauthorized_else_500(message: str, status: int) -> None:
    assert judge_failure(FunctionError("Authorizer", "Exception", message)).status == status
