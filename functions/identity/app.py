"""Identity API: sign-in codes, sessions and profiles (``POST /v1/verifications``,
``POST/DELETE /v1/sessions``, ``/v1/users/me``).

``AuthMode=otp`` sends codes through the SMS gateway's queue, so only that mode needs
``SEND_SMS_QUEUE_URL``.
"""

from __future__ import annotations

from chatflow.api.http import build_resolver, http_handler
from chatflow.api.identity_routes import identity_router
from chatflow.composition import Composition
from chatflow.settings import AwsSettings, IdentitySettings, SendSmsQueueSettings, TableSettings

deps = Composition().require(AwsSettings, TableSettings, IdentitySettings)
if deps.settings(IdentitySettings).auth_mode == "otp":
    deps.require(SendSmsQueueSettings)

app = build_resolver([identity_router(deps.identity)])
lambda_handler = http_handler(app)
