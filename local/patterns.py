"""Event patterns, as EventBridge rules and Lambda event filters write them.

Supports what filters commonly use: exact values, ``prefix``, ``suffix``,
``equals-ignore-case``, ``anything-but``, ``exists`` and ``numeric`` comparisons, on
nested fields and on arrays (any element may match).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

_MISSING = object()
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def matches(pattern: dict[str, Any], event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    for key, expected in pattern.items():
        actual = event.get(key, _MISSING)
        if isinstance(expected, dict):
            if actual is _MISSING or not matches(expected, actual):
                return False
        elif isinstance(expected, list):
            if not _any_rule(expected, actual):
                return False
        elif actual != expected:
            return False
    return True


def _any_rule(rules: list[Any], actual: Any) -> bool:
    values = actual if isinstance(actual, list) else [actual]
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if bool(rule["exists"]) == (actual is not _MISSING):
                return True
            continue
        if any(value is not _MISSING and _rule(rule, value) for value in values):
            return True
    return False


def _rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return bool(rule == value)
    if "prefix" in rule:
        return isinstance(value, str) and _text_rule(rule["prefix"], value, str.startswith)
    if "suffix" in rule:
        return isinstance(value, str) and _text_rule(rule["suffix"], value, str.endswith)
    if "equals-ignore-case" in rule:
        return isinstance(value, str) and value.lower() == str(rule["equals-ignore-case"]).lower()
    if "anything-but" in rule:
        excluded = rule["anything-but"]
        if isinstance(excluded, dict):
            return not _rule(excluded, value)
        return value not in (excluded if isinstance(excluded, list) else [excluded])
    if "numeric" in rule:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        terms = rule["numeric"]
        return all(_NUMERIC[terms[i]](float(value), float(terms[i + 1])) for i in range(0, len(terms), 2))
    return False


def _text_rule(expected: Any, value: str, test: Callable[[str, str], bool]) -> bool:
    if isinstance(expected, dict) and "equals-ignore-case" in expected:
        return test(value.lower(), str(expected["equals-ignore-case"]).lower())
    return test(value, str(expected))
