"""Routes of identity: sign-in codes, sessions and the caller's profile (contract §1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.api.http import caller_of
from chatflow.api.models import (
    CreateSessionRequest,
    ErrorResponse,
    SessionOut,
    StartVerificationRequest,
    UpdateProfileRequest,
    UserOut,
    VerificationOut,
)
from chatflow.api.responses import json_response, no_content
from chatflow.domain.clock import to_iso
from chatflow.domain.identity import IdentityService

_ERRORS: dict[int, Any] = {
    400: {"description": "Invalid input", "content": {"application/json": {"model": ErrorResponse}}},
    401: {"description": "Not signed in", "content": {"application/json": {"model": ErrorResponse}}},
}


_START_VERIFICATION = """\
AuthMode=otp: sends a 6-digit sign-in code by SMS (through the SMS gateway) and answers
202 at once. The code works for `expiresInSeconds` (300), once; it replaces any earlier
code of the number; 5 wrong tries burn it. At most 5 codes per number per hour: then
429 with `Retry-After` (seconds until the oldest of that hour's codes stops counting).

AuthMode=phone: no code exists, so none is sent: 409 `code_not_required`; sign in with
`POST /v1/sessions` and the phone number alone."""

_CREATE_SESSION = """\
AuthMode=otp: `code` is the SMS code from `POST /v1/verifications`. Missing or not 6
digits: 400 `validation_error` (not counted as a try). Wrong, expired, already used or
burned: 401 `invalid_code` (a wrong code counts a try; the 5th wrong try burns the code:
ask for a new one).

AuthMode=phone: the phone number alone signs in; `code` is ignored.

The first session for a number creates its user."""

_OK_USER: dict[int, Any] = {
    200: {"description": "The profile", "content": {"application/json": {"model": UserOut}}}
}


def identity_router(service: Callable[[], IdentityService]) -> Router:
    router = Router()

    @router.post(
        "/v1/verifications",
        tags=["identity"],
        summary="Send a sign-in code by SMS",
        description=_START_VERIFICATION,
        responses={
            202: {
                "description": "Code sent (or on its way)",
                "content": {"application/json": {"model": VerificationOut}},
            },
            400: _ERRORS[400],
            409: {
                "description": "AuthMode=phone: no code is needed (code_not_required)",
                "content": {"application/json": {"model": ErrorResponse}},
            },
            429: {
                "description": "Too many codes for this number in the last hour",
                "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
                "content": {"application/json": {"model": ErrorResponse}},
            },
        },
    )
    def start_verification(body: StartVerificationRequest) -> Response[VerificationOut]:
        started = service().start_verification(body.phoneNumber)
        out = VerificationOut(phoneNumber=started.phone_number, expiresInSeconds=started.expires_in_seconds)
        return json_response(202, out)

    @router.post(
        "/v1/sessions",
        tags=["identity"],
        summary="Sign in: start a session for a phone number",
        description=_CREATE_SESSION,
        responses={
            201: {"description": "Session created", "content": {"application/json": {"model": SessionOut}}}
        }
        | _ERRORS,
    )
    def create_session(body: CreateSessionRequest) -> Response[SessionOut]:
        signed = service().sign_in(body.phoneNumber, body.code)
        out = SessionOut(
            token=signed.issued.token,
            expiresAt=to_iso(signed.issued.session.expires_at),
            user=UserOut.of(signed.user),
        )
        return json_response(201, out)

    @router.delete(
        "/v1/sessions/current",
        tags=["identity"],
        summary="Sign out: the token stops working at once",
        responses={204: {"description": "Signed out"}} | _ERRORS,
    )
    def delete_session() -> Response[None]:
        service().sign_out(caller_of(router).token_hash)
        return no_content()

    @router.get(
        "/v1/users/me", tags=["identity"], summary="The caller's profile", responses=_OK_USER | _ERRORS
    )
    def get_me() -> UserOut:
        return UserOut.of(service().me(caller_of(router).phone_number))

    @router.patch(
        "/v1/users/me",
        tags=["identity"],
        summary="Change the caller's profile (null or empty clears a field)",
        responses=_OK_USER
        | _ERRORS
        | {409: {"description": "Username taken", "content": {"application/json": {"model": ErrorResponse}}}},
    )
    def patch_me(body: UpdateProfileRequest) -> UserOut:
        changes = body.model_dump(exclude_unset=True)
        return UserOut.of(service().update_me(caller_of(router).phone_number, changes))

    return router
