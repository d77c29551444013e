"""Campaign message templates: {{name}} variables, errors that say where, literal rendering."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatflow.domain.templates import MAX_TEXT, MessageTemplate, parse_template
from chatflow.errors import InvalidTemplate, ValidationFailed

names = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
# Literal text cannot contain "{{" (it opens a variable) and must not end in "{" (that
# brace would join the next variable's "{{"); anything else, "}}" included, is literal.
literals = st.text(max_size=20).filter(lambda text: "{{" not in text and not text.endswith("{"))
padding = st.sampled_from(["", " ", "  ", "\t", "\n"])
# Values are any text at all: braces, "{{name}}", newlines.
values_text = st.one_of(
    st.text(max_size=20), st.sampled_from(["{{x}}", "{{ first_name }}", "}}", "{{", "{", "{{{{a}}}}"])
)


@st.composite
def templates(draw: st.DrawFn) -> tuple[str, list[str | tuple[str]]]:
    """A valid template source and its pieces: literal strings and (name,) slots."""
    pieces: list[str | tuple[str]] = []
    source = ""
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        literal = draw(literals)
        name = draw(names)
        source += literal + "{{" + draw(padding) + name + draw(padding) + "}}"
        pieces += [literal, (name,)]
    tail = draw(literals)
    source += tail
    pieces.append(tail)
    return source, pieces


def test_variables_are_replaced_by_their_values() -> None:
    # Given a template with two variables
    template = parse_template("Hello {{first_name}}, your code is {{code}}.")
    # When it is rendered
    text = template.render({"first_name": "Ada", "code": "1234"})
    # Then each variable is replaced by its value
    assert text == "Hello Ada, your code is 1234."


def test_whitespace_inside_the_braces_is_ignored() -> None:
    # Given a variable written with spaces, a tab and a newline inside the braces
    template = parse_template("Hi {{ first_name }} {{\tcode\n}}")
    # When it is parsed and rendered
    # Then the names are the same as without the whitespace
    assert template.variables == ("first_name", "code")
    assert template.render({"first_name": "Ada", "code": "7"}) == "Hi Ada 7"


def test_variables_are_listed_once_in_order_of_first_use() -> None:
    # Given a template that uses a variable twice
    template = parse_template("{{b}} {{a}} {{b}} {{c}} {{a}}")
    # When its variables are read
    # Then each appears once, where it is first used
    assert template.variables == ("b", "a", "c")


def test_a_template_without_variables_renders_as_written() -> None:
    # Given a template with no variables
    template = parse_template("Service restored. Thank you for your patience.")
    # When it is rendered with no values
    # Then the text is unchanged
    assert template.variables == ()
    assert template.render({}) == "Service restored. Thank you for your patience."


@pytest.mark.parametrize("source", ["Save 20% }}", "a } b", "{ x }", "}}{{x}}", "set {a} and }}}"])
def test_lone_closing_braces_and_single_braces_are_literal_text(source: str) -> None:
    # Given a template with "}" or "}}" that no "{{" opened
    template = parse_template(source)
    # When it is rendered
    # Then those braces are sent as written
    assert template.render({"x": "X"}) == source.replace("{{x}}", "X")


def test_values_are_substituted_literally_and_never_rescanned() -> None:
    # Given a template and a value that itself looks like a variable
    template = parse_template("{{a}} and {{b}}")
    # When it is rendered
    text = template.render({"a": "{{b}}", "b": "{{a}}"})
    # Then the values stay as written
    assert text == "{{b}} and {{a}}"


def test_a_missing_value_raises_value_error_naming_every_missing_variable() -> None:
    # Given a template with three variables
    template = parse_template("{{first_name}} {{code}} {{city}}")
    # When it is rendered without two of them
    with pytest.raises(ValueError, match="first_name, city") as caught:
        template.render({"code": "1"})
    # Then the error is a ValueError, not a KeyError
    assert not isinstance(caught.value, KeyError)


def test_extra_values_are_ignored() -> None:
    # Given a template with one variable
    template = parse_template("Hi {{name}}")
    # When it is rendered with more values than it uses
    # Then only its variable is used
    assert template.render({"name": "Ada", "other": "x"}) == "Hi Ada"


@pytest.mark.parametrize(
    ("source", "where", "what"),
    [
        ("Hello {{first_name", "line 1, column 7", "`{{` is never closed"),
        ("Hi\nyou {{code", "line 2, column 5", "`{{` is never closed"),
        ("a\n\nb\n  {{x}} {{", "line 4, column 9", "`{{` is never closed"),
        ("{{ {{x}}", "line 1, column 1", "not closed before the `{{` at line 1, column 4"),
        ("x {{a\n{{b}}", "line 1, column 3", "not closed before the `{{` at line 2, column 1"),
        ("{{}}", "line 1, column 1", "has no name"),
        ("ok {{x}}\n  {{ }}", "line 2, column 3", "has no name"),
        ("{{first-name}}", "line 1, column 1", "'first-name' is not a valid variable name"),
        ("Hi {{a b}}", "line 1, column 4", "'a b' is not a valid variable name"),
        ("\n{{é}}", "line 2, column 1", "'é' is not a valid variable name"),
        ("{{{x}}}", "line 1, column 1", "'{x' is not a valid variable name"),
        ("😀 {{a.b}}", "line 1, column 3", "'a.b' is not a valid variable name"),
    ],
)
def test_malformed_templates_say_what_is_wrong_and_where(source: str, where: str, what: str) -> None:
    # Given a malformed template
    # When it is parsed
    with pytest.raises(InvalidTemplate) as caught:
        parse_template(source)
    # Then the message gives the line and column of the "{{" at fault, and the fault
    assert caught.value.message.startswith(where + ": ")
    assert what in caught.value.message


def test_the_unclosed_message_says_how_to_fix_it() -> None:
    # Given a template whose "{{" is never closed
    # When it is parsed
    with pytest.raises(InvalidTemplate) as caught:
        parse_template("Hi\nyou {{code")
    # Then the message says to write "}}" after the name
    assert caught.value.message.startswith(
        "line 2, column 5: `{{` is never closed (write `}}` after the variable name"
    )


def test_invalid_template_maps_to_400_invalid_template() -> None:
    # Given a malformed template
    # When it is parsed
    with pytest.raises(ValidationFailed) as caught:
        parse_template("{{")
    # Then the error carries the invalid_template code
    assert caught.value.code == "invalid_template"


@pytest.mark.parametrize("source", ["", " ", "\n\t  \n"])
def test_an_empty_or_blank_template_is_invalid(source: str) -> None:
    # Given a template with nothing to send
    # When it is parsed
    # Then it is refused as empty
    with pytest.raises(InvalidTemplate, match="empty"):
        parse_template(source)


def test_a_template_of_exactly_the_maximum_length_is_accepted() -> None:
    # Given a template of MAX_TEXT characters, a variable included
    source = "{{code}}" + "x" * (MAX_TEXT - len("{{code}}"))
    # When it is parsed
    template = parse_template(source)
    # Then it is accepted
    assert MAX_TEXT == 1600
    assert template.variables == ("code",)


def test_a_template_longer_than_the_maximum_is_invalid() -> None:
    # Given a template one character too long
    # When it is parsed
    with pytest.raises(InvalidTemplate) as caught:
        parse_template("é" * (MAX_TEXT + 1))
    # Then the message gives the length and the limit
    assert "1601" in caught.value.message
    assert "1600" in caught.value.message


def test_a_template_built_directly_is_parsed_and_checked() -> None:
    # Given a template source and variables as stored
    # When a MessageTemplate is built from them
    template = MessageTemplate("Hi {{name}}", ("name",))
    # Then it renders like a parsed one, and is equal to it
    assert template.render({"name": "Ada"}) == "Hi Ada"
    assert template == parse_template("Hi {{name}}")
    # And variables that do not match the source are refused
    with pytest.raises(ValueError, match="variables"):
        MessageTemplate("Hi {{name}}", ("other",))


@given(templates(), st.data())
def test_rendering_joins_literals_and_values_exactly(
    template_and_pieces: tuple[str, list[str | tuple[str]]], data: st.DataObject
) -> None:
    # Given a valid template and any values, with braces and "{{...}}" in them
    source, pieces = template_and_pieces
    template = parse_template(source)
    values = {name: data.draw(values_text) for name in template.variables}
    # When it is rendered
    text = template.render(values)
    # Then the text is the literals and the values, each exactly as written
    assert text == "".join(piece if isinstance(piece, str) else values[piece[0]] for piece in pieces)


@given(templates())
def test_variables_are_unique_and_in_order_of_first_appearance(
    template_and_pieces: tuple[str, list[str | tuple[str]]],
) -> None:
    # Given a valid template
    source, pieces = template_and_pieces
    # When it is parsed
    template = parse_template(source)
    # Then its variables are the names used, once each, in order
    used = [piece[0] for piece in pieces if isinstance(piece, tuple)]
    assert template.variables == tuple(dict.fromkeys(used))


@given(templates(), st.data())
def test_rendering_never_leaves_a_declared_variable_behind(
    template_and_pieces: tuple[str, list[str | tuple[str]]], data: st.DataObject
) -> None:
    # Given a valid template and values that do not themselves contain "{{"
    source, _ = template_and_pieces
    template = parse_template(source)
    values = {
        name: data.draw(st.text(max_size=10).filter(lambda v: "{" not in v)) for name in template.variables
    }
    # When it is rendered
    text = template.render(values)
    # Then no "{{name}}" of its variables is left in the text
    for name in template.variables:
        assert "{{" + name + "}}" not in text
