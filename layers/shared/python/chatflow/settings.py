"""Settings: one validated model per concern, read once from the environment at cold start.

Only the composition roots (``functions/*/app.py``) call ``load``; the domain never
reads the environment.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

S = TypeVar("S", bound=BaseModel)


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _EnvModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class AwsSettings(_EnvModel):
    region: str = Field(validation_alias="AWS_REGION", min_length=1)


class TableSettings(_EnvModel):
    users_table: str = Field(validation_alias="USERS_TABLE", min_length=1)
    chats_table: str = Field(validation_alias="CHATS_TABLE", min_length=1)


class IdentitySettings(_EnvModel):
    auth_mode: Literal["phone"] = Field(validation_alias="AUTH_MODE")
    operator_phone_numbers: Annotated[list[str], BeforeValidator(_split_csv)] = Field(
        default_factory=list, validation_alias="OPERATOR_PHONE_NUMBERS"
    )
    session_ttl_days: int = Field(default=30, ge=1, le=365, validation_alias="SESSION_TTL_DAYS")


class CursorSettings(_EnvModel):
    cursor_secret_arn: str = Field(validation_alias="CURSOR_SECRET_ARN", min_length=1)


def load(model: type[S]) -> S:
    """Validate ``model`` from the environment; a missing or bad variable fails loudly."""
    return model.model_validate(dict(os.environ))
