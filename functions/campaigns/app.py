"""Campaign API (CONTRACT §5): campaigns, uploads, recipients; operators only."""

from __future__ import annotations

from chatflow.api.campaign_routes import campaign_router
from chatflow.api.http import build_resolver, http_handler
from chatflow.composition import Composition
from chatflow.settings import AwsSettings, CampaignSettings, CursorSettings, IdentitySettings, TableSettings

deps = Composition().require(AwsSettings, TableSettings, IdentitySettings, CampaignSettings, CursorSettings)

app = build_resolver([campaign_router(deps.campaigns)])
lambda_handler = http_handler(app)
