"""Phone numbers: accepted in any common format, always stored and returned in E.164."""

from __future__ import annotations

from chatflow.errors import InvalidPhoneNumber

# Numbers written without a leading "+" or "00" are read as numbers of this region.
DEFAULT_REGION = "US"
# E.164 allows at most 15 digits; phonenumbers accepts a few longer national plans.
E164_MAX_DIGITS = 15


def normalize_phone(raw: str, *, default_region: str = DEFAULT_REGION) -> str:
    """Return ``raw`` in E.164 (``+14155550101``) or raise ``InvalidPhoneNumber``."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > 32:
        raise InvalidPhoneNumber(_message(raw))
    if text.startswith("00"):
        text = "+" + text[2:]
    # Imported on first use: ~10 ms of cold start that the authorizer and the read
    # routes never need (STYLE.md §11). Python caches the module after the first call.
    import phonenumbers

    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(_message(raw)) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(_message(raw))
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) > E164_MAX_DIGITS + 1:
        raise InvalidPhoneNumber(_message(raw))
    return str(e164)


def _message(raw: object) -> str:
    return f"{raw!r} is not a valid phone number: send it in international format, for example +14155550101"
