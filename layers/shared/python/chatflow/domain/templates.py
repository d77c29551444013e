"""Campaign message templates: ``Hello {{first_name}}, your code is {{ code }}``.

Syntax (CONTRACT.md §5):

- ``{{name}}`` is a variable; ``name`` is ASCII letters, digits and ``_``, at least one of
  them. Whitespace inside the braces is ignored: ``{{ name }}`` is ``{{name}}``.
- Only ``{{`` opens a variable. A lone ``{``, ``}`` or ``}}`` is literal text, so
  ``Save 20% }}`` is a valid template that sends ``}}`` as written. There is no escape for
  a literal ``{{``.
- Errors (``InvalidTemplate``) say where, as ``line L, column C`` counted from 1 in
  characters: an unclosed ``{{`` (including one followed by another ``{{`` before its
  ``}}``, as in ``{{ {{x}}``), an empty name (``{{}}``, ``{{ }}``), an invalid name
  (``{{first-name}}``, ``{{a b}}``, ``{{é}}``).
- A template is 1 to ``MAX_TEXT`` characters and not only whitespace.

A template is parsed once into literal parts and variable slots; rendering joins the parts
with the values, so a value that contains ``{{x}}`` is sent as written, never expanded.
A rendered text can still be longer than ``MAX_TEXT``; whoever renders checks that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from chatflow.errors import InvalidTemplate

# The longest template, and the longest rendered text a campaign sends (10 SMS parts of GSM-7).
MAX_TEXT = 1600

_OPEN = "{{"
_CLOSE = "}}"
_NAME = re.compile(r"[A-Za-z0-9_]+")
_EXAMPLE = "as in {{first_name}}"


@dataclass(frozen=True)
class _Slot:
    """Where a variable's value goes."""

    name: str


_Part = str | _Slot


@dataclass(frozen=True)
class MessageTemplate:
    """A parsed template: its source, and its variables once each in order of first use.

    Build it with ``parse_template``. Constructing it directly parses ``source`` too, and
    ``variables`` must then be the ones the source uses.
    """

    source: str
    variables: tuple[str, ...]
    _parts: tuple[_Part, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._parts:
            return
        parts, variables = _parse(self.source)
        if variables != tuple(self.variables):
            raise ValueError(
                f"variables {self.variables!r} are not the ones the template uses: {variables!r}"
            )
        object.__setattr__(self, "_parts", parts)

    def render(self, values: Mapping[str, str]) -> str:
        """The text with each ``{{name}}`` replaced by ``values[name]``, taken literally.

        Extra keys are ignored; missing ones raise ``ValueError`` naming all of them.
        """
        missing = [name for name in self.variables if name not in values]
        if missing:
            raise ValueError("no value for " + ", ".join(missing))
        return "".join(part if isinstance(part, str) else values[part.name] for part in self._parts)


def parse_template(source: str) -> MessageTemplate:
    """Parse ``source`` or raise ``InvalidTemplate`` saying what is wrong and where."""
    parts, variables = _parse(source)
    return MessageTemplate(source=source, variables=variables, _parts=parts)


def _parse(source: str) -> tuple[tuple[_Part, ...], tuple[str, ...]]:
    if not source.strip():
        raise InvalidTemplate(
            "the template is empty: write the message text, for example Hello {{first_name}}"
        )
    if len(source) > MAX_TEXT:
        raise InvalidTemplate(
            f"the template is {len(source)} characters long: the limit is {MAX_TEXT}, shorten it"
        )
    parts: list[_Part] = []
    names: dict[str, None] = {}  # an ordered set
    position = 0
    while True:
        start = source.find(_OPEN, position)
        if start < 0:
            break
        if start > position:
            parts.append(source[position:start])
        end = source.find(_CLOSE, start + len(_OPEN))
        nested = source.find(_OPEN, start + len(_OPEN), end if end >= 0 else len(source))
        if end < 0 or nested >= 0:
            why = (
                "is never closed"
                if nested < 0
                else f"is not closed before the `{{{{` at {_where(source, nested)}"
            )
            raise InvalidTemplate(
                f"{_where(source, start)}: `{{{{` {why} (write `}}}}` after the variable name, {_EXAMPLE})"
            )
        name = source[start + len(_OPEN) : end].strip()
        if not name:
            raise InvalidTemplate(
                f"{_where(source, start)}: a variable has no name (write one between the braces, {_EXAMPLE})"
            )
        if not _NAME.fullmatch(name):
            raise InvalidTemplate(
                f"{_where(source, start)}: {name!r} is not a valid variable name"
                f" (use only letters, digits and _, {_EXAMPLE})"
            )
        parts.append(_Slot(name))
        names[name] = None
        position = end + len(_CLOSE)
    if position < len(source):
        parts.append(source[position:])
    return tuple(parts), tuple(names)


def _where(source: str, index: int) -> str:
    """``line L, column C`` of ``source[index]``, both counted from 1."""
    line = source.count("\n", 0, index) + 1
    column = index - (source.rfind("\n", 0, index) + 1) + 1
    return f"line {line}, column {column}"
