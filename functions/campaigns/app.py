"""Campaign API (CONTRACT §5): campaigns, uploads, recipients; operators only."""

from __future__ import annotations

from functools import cache

from chatflow.adapters import aws
from chatflow.adapters.campaign_store import DynamoCampaignRepository, S3RecipientFiles
from chatflow.adapters.identity_store import DynamoUserRepository
from chatflow.api.campaign_routes import campaign_router
from chatflow.api.http import build_resolver, http_handler
from chatflow.domain.campaigns import CampaignService
from chatflow.domain.clock import utc_now
from chatflow.domain.operators import OperatorDirectory
from chatflow.domain.pagination import CursorCodec
from chatflow.settings import (
    AwsSettings,
    CampaignSettings,
    CursorSettings,
    IdentitySettings,
    TableSettings,
    load,
)

AWS = load(AwsSettings)
TABLES = load(TableSettings)
IDENTITY = load(IdentitySettings)
CAMPAIGNS = load(CampaignSettings)
CURSORS = load(CursorSettings)


@cache
def campaigns() -> CampaignService:
    client = aws.dynamodb(AWS.region)
    return CampaignService(
        campaigns=DynamoCampaignRepository(CAMPAIGNS.campaigns_table, client),
        files=S3RecipientFiles(CAMPAIGNS.campaign_bucket, aws.s3(AWS.region)),
        operators=OperatorDirectory(
            DynamoUserRepository(TABLES.users_table, client), frozenset(IDENTITY.operator_phone_numbers)
        ),
        cursors=CursorCodec(aws.read_secret(AWS.region, CURSORS.cursor_secret_arn)),
        clock=utc_now,
    )


app = build_resolver([campaign_router(campaigns)])
lambda_handler = http_handler(app)
