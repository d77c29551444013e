"""Phone numbers in E.164, read the way the API reads them (CONTRACT §0)."""

from __future__ import annotations

import phonenumbers

from chatflow_cli.errors import CliError

# Numbers written without a leading "+" or "00" are read as numbers of this region (as the API does).
DEFAULT_REGION = "US"


def normalize_phone(raw: str) -> str:
    """``raw`` in E.164 (``+14155550101``), or a ``CliError`` saying how to write it."""
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise CliError(
            f"{raw!r} is not a valid phone number: write it in international format, for example +14155550101"
        )
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
