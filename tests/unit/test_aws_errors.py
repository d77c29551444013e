"""AWS errors translated in one place (chatflow.adapters.aws_errors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chatflow.adapters.aws_errors import (
    CONDITION_FAILED,
    GONE,
    TRANSACTION_CANCELLED,
    AwsCall,
    connections_errors,
    dynamo_errors,
    events_errors,
    s3_errors,
    secrets_errors,
    sqs_errors,
)
from chatflow.errors import AlreadyExists, ConcurrentUpdate, Throttled


def client_error(code: str, **response: Any) -> ClientError:
    document: Any = {"Error": {"Code": code, "Message": code}, **response}
    return ClientError(document, "Operation")


def raise_in(call: AwsCall, error: Exception) -> AwsCall:
    with call:
        raise error
    return call


def test_a_failed_condition_becomes_a_concurrent_update_chained_to_the_client_error() -> None:
    error = client_error(CONDITION_FAILED)

    with pytest.raises(ConcurrentUpdate) as caught:
        raise_in(dynamo_errors(), error)

    assert caught.value.__cause__ is error


def test_a_failed_condition_becomes_the_conflict_the_adapter_names() -> None:
    with pytest.raises(AlreadyExists):
        raise_in(dynamo_errors(conflict=AlreadyExists), client_error(CONDITION_FAILED))


@pytest.mark.parametrize(
    ("family", "code"),
    [
        (dynamo_errors, "ProvisionedThroughputExceededException"),
        (dynamo_errors, "ThrottlingException"),
        (sqs_errors, "RequestThrottled"),
        (sqs_errors, "KmsThrottled"),
        (events_errors, "ThrottlingException"),
        (s3_errors, "SlowDown"),
        (secrets_errors, "ThrottlingException"),
        (connections_errors, "LimitExceededException"),
    ],
)
def test_a_throttling_code_of_the_service_becomes_throttled(family: Callable[[], AwsCall], code: str) -> None:
    with pytest.raises(Throttled):
        raise_in(family(), client_error(code))


@pytest.mark.parametrize("family", [dynamo_errors, sqs_errors, events_errors, s3_errors, connections_errors])
def test_any_other_code_goes_on_as_the_client_error(family: Callable[[], AwsCall]) -> None:
    error = client_error("AccessDeniedException")

    with pytest.raises(ClientError) as caught:
        raise_in(family(), error)

    assert caught.value is error


def test_a_condition_failure_is_not_a_conflict_outside_dynamodb() -> None:
    with pytest.raises(ClientError):
        raise_in(sqs_errors(), client_error(CONDITION_FAILED))


def test_an_expected_code_ends_the_block_quietly_and_is_named() -> None:
    error = client_error(GONE)

    call = raise_in(connections_errors(expect=GONE), error)

    assert (call.refused, call.error) == (GONE, error)


def test_a_block_that_succeeds_names_no_refusal() -> None:
    with dynamo_errors(expect=CONDITION_FAILED) as call:
        pass

    assert (call.refused, call.error, call.reasons) == (None, None, [])


def test_an_expected_cancelled_transaction_gives_each_items_reason() -> None:
    reasons = [{"Code": "None"}, {"Code": "ConditionalCheckFailed"}, {}]

    call = raise_in(
        dynamo_errors(expect=TRANSACTION_CANCELLED),
        client_error(TRANSACTION_CANCELLED, CancellationReasons=reasons),
    )

    assert call.reasons == ["None", "ConditionalCheckFailed", "None"]


def test_an_error_that_is_not_a_client_error_goes_through_untouched() -> None:
    with pytest.raises(KeyError):
        raise_in(dynamo_errors(expect=CONDITION_FAILED), KeyError("x"))


def test_a_code_the_family_does_not_map_raises_the_adapters_own_error() -> None:
    error = client_error("AWS.SimpleQueueService.NonExistentQueue")

    with pytest.raises(LookupError) as caught:
        raise_in(sqs_errors(otherwise=lambda exc: LookupError(str(exc))), error)

    assert caught.value.__cause__ is error


def test_throttling_stays_throttled_when_the_adapter_has_its_own_error() -> None:
    with pytest.raises(Throttled):
        raise_in(sqs_errors(otherwise=lambda exc: LookupError(str(exc))), client_error("RequestThrottled"))
