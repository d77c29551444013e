"""Probe authorizer: the token ``letmein`` is allowed (as ``probe-user``), anything else is not."""

from __future__ import annotations

from typing import Any

TOKEN = "letmein"


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "methodArn" in event:
        token = (event.get("queryStringParameters") or {}).get("token")
        effect = "Allow" if token == TOKEN else "Deny"
        return {
            "principalId": "probe-user",
            "policyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {"Action": "execute-api:Invoke", "Effect": effect, "Resource": event["methodArn"]}
                ],
            },
            "context": {"user": "probe-user"},
        }
    header = (event.get("headers") or {}).get("authorization", "")
    return {"isAuthorized": header == f"Bearer {TOKEN}", "context": {"user": "probe-user"}}
