"""parse_template: the template read with libyaml, as samtranslator's yaml_parse reads it."""

from __future__ import annotations

import pytest
from samtranslator.yaml_helper import yaml_parse

from local.template import TEMPLATE_PATH, parse_template


def test_the_template_parses_to_the_document_samtranslator_reads() -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert parse_template(text) == yaml_parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "A: !Ref Thing\nB: !GetAtt Table.Arn\nC: !GetAtt [Table, StreamArn]\n",
        "A: !Sub '${AWS::StackName}-x'\nB: !Sub ['${A}', {A: !Ref X}]\nC: !If [Cond, 1, !Ref AWS::NoValue]\n",
        "A: !Condition IsProd\nB: !Equals [!Ref Env, prod]\nC: !Join ['', [a, !Ref B]]\n",
        "A: 'yes'\nB: yes\nC: 012\nD: 0x1F\nE: 1e3\nF: ~\nG: 2026-12-04\nH: '2026-12-04'\n",
        "A: |\n  two\n  lines\nB: >\n  folded\n  text\n",
    ],
)
def test_short_tags_and_scalars_parse_as_samtranslator_parses_them(text: str) -> None:
    assert parse_template(text) == yaml_parse(text)


def test_an_empty_template_is_an_empty_document() -> None:
    assert parse_template("") == {}
