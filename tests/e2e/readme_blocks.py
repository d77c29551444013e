"""The README's shell blocks as one script: extracted in order, run with bash, checked.

A fenced block whose language is ``sh``, ``bash`` or ``shell`` is a command block. Each one
runs, in the order of the file, in one bash process with ``set -eu`` (so a variable set in one
block is there for the next, as in the reader's terminal, and any failing command fails its
block). A comment ``# → text`` on a line of a block is output the README shows: ``text`` must
appear in what that block printed. Two HTML comments, on the line(s) just before a block:

- ``<!-- not-tested: reason -->``: the block is not run (``make run`` itself, ``sam deploy``...);
  the reason is required.
- ``<!-- needs: command -->``: the block runs only where ``command`` is installed; elsewhere it
  is reported as skipped, with that reason.

Other fences (``text``, none) are output or layouts, never run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SHELL_LANGUAGES = frozenset({"sh", "bash", "shell"})
_FENCE = re.compile(r"^(```+)\s*([\w-]*)")
_MARKER = re.compile(r"^<!--\s*(not-tested|needs)\s*:(.*?)-->\s*$")
_EXPECTED = re.compile(r"#\s*→\s*(.+?)\s*$")
# Printed between blocks by the script, so the output can be cut back into blocks.
# (with the time, bash's $EPOCHREALTIME, so that slow blocks can be named)
_SEPARATOR = "@@readme-block {} at $EPOCHREALTIME@@"
_SEPARATOR_LINE = re.compile(r"^@@readme-block (\d+|end) at ([\d.,]+)@@$", re.MULTILINE)


class ReadmeError(ValueError):
    """The README cannot be turned into a script (a marker without a reason, an unclosed fence...)."""


@dataclass(frozen=True)
class Block:
    number: int  # 1-based, counting command blocks only
    line: int  # the line of the opening fence
    code: str
    expected: tuple[str, ...] = ()
    not_tested: str | None = None  # the reason, when the block is not run
    needs: str | None = None  # a command the block needs

    @property
    def where(self) -> str:
        return f"block {self.number} (line {self.line})"


@dataclass(frozen=True)
class Outcome:
    """What running the blocks gave: the problems (none when the README works) and what was skipped."""

    problems: tuple[str, ...]
    skipped: tuple[str, ...]
    outputs: Mapping[int, str]
    seconds: Mapping[int, float]  # how long each block that finished took


def extract(markdown: str) -> list[Block]:
    """The command blocks of ``markdown``, in order, with their expected outputs and markers."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    pending: tuple[str, str, int] | None = None  # (kind, value, line) of a marker not yet used
    index = 0
    while index < len(lines):
        line = lines[index]
        if marker := _MARKER.match(line.strip()):
            kind, value = marker.group(1), marker.group(2).strip()
            if not value:
                raise ReadmeError(f"line {index + 1}: <!-- {kind}: --> needs a reason after the colon")
            pending = (kind, value, index + 1)
            index += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            if line.strip() and pending is not None:
                raise ReadmeError(f"line {pending[2]}: <!-- {pending[0]}: --> is not just before a block")
            index += 1
            continue
        ticks, language = fence.group(1), fence.group(2).lower()
        end = next((k for k in range(index + 1, len(lines)) if lines[k].startswith(ticks)), None)
        if end is None:
            raise ReadmeError(f"line {index + 1}: a ``` block is never closed")
        body = lines[index + 1 : end]
        if language in SHELL_LANGUAGES:
            kind, value = (pending[0], pending[1]) if pending else ("", "")
            blocks.append(
                Block(
                    number=len(blocks) + 1,
                    line=index + 1,
                    code="\n".join(body) + "\n",
                    expected=tuple(m.group(1) for text in body if (m := _EXPECTED.search(text))),
                    not_tested=value if kind == "not-tested" else None,
                    needs=value if kind == "needs" else None,
                )
            )
        elif pending is not None:
            raise ReadmeError(
                f"line {pending[2]}: <!-- {pending[0]}: --> is before a block that is not shell"
            )
        pending = None
        index = end + 1
    if pending is not None:
        raise ReadmeError(f"line {pending[2]}: <!-- {pending[0]}: --> is not followed by a block")
    return blocks


def script(blocks: list[Block], *, prelude: str = "") -> str:
    """One bash script: ``set -eu``, the prelude, then each block to run after its separator."""
    parts = ["set -eu\n", prelude]
    for block in blocks:
        # On a line of its own: the block before may have printed no final newline (curl).
        parts.append(f'printf "\\n%s\\n" "{_SEPARATOR.format(block.number)}"\n')
        parts.append(block.code)
    parts.append(f'printf "\\n%s\\n" "{_SEPARATOR.format("end")}"\n')
    return "".join(parts)


def runnable(blocks: list[Block], path: str) -> tuple[list[Block], list[str]]:
    """The blocks to run, and why the others are not (each names its block and reason)."""
    chosen: list[Block] = []
    skipped: list[str] = []
    for block in blocks:
        if block.not_tested is not None:
            skipped.append(f"{block.where}: not tested: {block.not_tested}")
        elif block.needs is not None and shutil.which(block.needs, path=path) is None:
            skipped.append(f"{block.where}: skipped: {block.needs} is not installed")
        else:
            chosen.append(block)
    return chosen, skipped


def run(
    blocks: list[Block],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    prelude: str = "",
) -> Outcome:
    """Runs the blocks that may run with bash; a problem for a block that fails or lacks its output."""
    chosen, skipped = runnable(blocks, env.get("PATH", ""))
    bash = shutil.which("bash", path=env.get("PATH")) or "/bin/bash"
    # A session of its own, so that a timeout ends whatever the blocks started, not bash alone.
    process = subprocess.Popen(  # noqa: S603 - bash on the README's own blocks
        [bash, "-c", script(chosen, prelude=prelude)],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    code: int | None
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        code = None
    outputs, seconds = _cut(stdout)
    problems: list[str] = []
    failed: int | None = None
    if "end" not in outputs:
        started = [int(number) for number in outputs if number != "end"]
        failed = started[-1] if started else 0
        status = f"exit code {code}" if code is not None else f"still running after {timeout:g} s"
        where = next((b.where for b in chosen if b.number == failed), "before the first block")
        its_output = outputs.get(str(failed), stdout)
        problems.append(
            f"{where} failed ({status}); its output:\n{_tail(its_output)}\nerrors:\n{_tail(stderr)}"
        )
    for block in chosen:
        printed = outputs.get(str(block.number))
        if printed is None or block.number == failed:
            continue  # not reached, or the failure reported above
        problems.extend(
            f"{block.where}: expected {text!r} in its output, got:\n{_tail(printed)}"
            for text in block.expected
            if text not in printed
        )
    return Outcome(
        tuple(problems), tuple(skipped), {int(k): v for k, v in outputs.items() if k != "end"}, seconds
    )


def _cut(stdout: str) -> tuple[dict[str, str], dict[int, float]]:
    """The output of each block, by number (``end`` once the last block finished), and the
    seconds each finished block took."""
    cut: dict[str, str] = {}
    seconds: dict[int, float] = {}
    marks = list(_SEPARATOR_LINE.finditer(stdout))
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        cut[mark.group(1)] = stdout[mark.end() : following.start() if following else len(stdout)]
        if following is not None:
            started, ended = (float(m.group(2).replace(",", ".")) for m in (mark, following))
            seconds[int(mark.group(1))] = ended - started
    return cut, seconds


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
