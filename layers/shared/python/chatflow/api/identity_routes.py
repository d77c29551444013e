"""Routes of identity: sessions and the caller's profile (contract §1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from chatflow.api.http import caller_of
from chatflow.api.models import CreateSessionRequest, ErrorResponse, SessionOut, UpdateProfileRequest, UserOut
from chatflow.api.responses import json_response, no_content
from chatflow.domain.clock import to_iso
from chatflow.domain.identity import IdentityService

_ERRORS: dict[int, Any] = {
    400: {"description": "Invalid input", "content": {"application/json": {"model": ErrorResponse}}},
    401: {"description": "Not signed in", "content": {"application/json": {"model": ErrorResponse}}},
}


_OK_USER: dict[int, Any] = {
    200: {"description": "The profile", "content": {"application/json": {"model": UserOut}}}
}


def identity_router(service: Callable[[], IdentityService]) -> Router:
    router = Router()

    @router.post(
        "/v1/sessions",
        tags=["identity"],
        summary="Sign in: start a session for a phone number",
        responses={
            201: {"description": "Session created", "content": {"application/json": {"model": SessionOut}}}
        }
        | _ERRORS,
    )
    def create_session(body: CreateSessionRequest) -> Response[SessionOut]:
        signed = service().sign_in(body.phoneNumber)
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
