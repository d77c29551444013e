"""The README works as written: its command blocks, run in order against a stack started as ``make run``.

The stack is ``python -m local.serve``, what ``make run`` runs, with its defaults (sign-in codes
by SMS) on free ports, its fake provider without faults (see ``stack``); the README finds the
ports as a reader's terminal does, in ``$CHATFLOW_STATE_DIR/outputs.json``. Blocks marked
``<!-- not-tested: reason -->`` (``make run`` itself, deploys) are not run;
``tests/e2e/readme_blocks.py`` says how blocks are found, run and checked, and the first tests
below show that a broken block fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.readme_blocks import Block, ReadmeError, extract, run

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
STACK_START_SECONDS = 60
README_SECONDS = 150
# The CLI of this checkout, as the `chatflow` console script runs it (pyproject's
# [project.scripts]): the console script in .venv may belong to another checkout that shares it.
CHATFLOW_CLI = (
    f'chatflow() {{ "{sys.executable}" -c '
    '"from chatflow_cli.main import app; app(prog_name=\'chatflow\')" "$@"; }\n'
)

# A command line (after any VAR=value) that starts a stack, builds, tests or deploys.
_STARTS_OR_DEPLOYS = re.compile(
    r"^\s*(\w+=\S+\s+)*(make\s+(run|build|test|bench|deploy)|\S*sam\s+(deploy|build))\b"
)

SAMPLE = """# A sample

Some text.

<!-- not-tested: it would start a server -->
```sh
make run
```

```text
not a command
```

```bash
GREETING=hello
echo "$GREETING world"       # → hello world
```

<!-- needs: a-command-nobody-has -->
```sh
a-command-nobody-has --version
```

```sh
echo "$GREETING again"   # → hello again
```
"""


# ---- the extractor and runner, on samples -------------------------------------------------------


def _run_sample(markdown: str, tmp_path: Path) -> tuple[list[Block], tuple[str, ...], tuple[str, ...]]:
    blocks = extract(markdown)
    outcome = run(blocks, cwd=tmp_path, env={"PATH": os.environ["PATH"]}, timeout=20)
    return blocks, outcome.problems, outcome.skipped


def test_shell_blocks_are_found_in_order_with_their_markers_and_expected_output() -> None:
    # Given a README with shell blocks, a text block and both markers
    # When its blocks are extracted
    blocks = extract(SAMPLE)

    # Then the shell blocks come in order, the text block is not one, and markers are kept
    assert [b.line for b in blocks] == [6, 14, 20, 24]
    assert blocks[0].not_tested == "it would start a server"
    assert blocks[1].expected == ("hello world",)
    assert blocks[2].needs == "a-command-nobody-has"
    assert blocks[3].code == 'echo "$GREETING again"   # → hello again\n'


def test_a_working_sample_passes_with_variables_kept_from_block_to_block(tmp_path: Path) -> None:
    # Given the sample, When its blocks run
    _, problems, skipped = _run_sample(SAMPLE, tmp_path)

    # Then nothing is wrong (GREETING, set by one block, is there in the next), and the two
    # blocks not run are reported with their reasons
    assert problems == ()
    assert skipped == (
        "block 1 (line 6): not tested: it would start a server",
        "block 3 (line 20): skipped: a-command-nobody-has is not installed",
    )


def test_a_failing_command_fails_its_block_and_stops_the_run(tmp_path: Path) -> None:
    # Given a README whose second block has a command that fails midway, then one that works
    broken = SAMPLE.replace('echo "$GREETING world"', 'ls /no/such/dir\necho "$GREETING world"')

    # When it runs
    _, problems, _ = _run_sample(broken, tmp_path)

    # Then that block is named as failed, with the command's error, and nothing after it counts
    assert len(problems) == 1
    assert problems[0].startswith("block 2 (line 14) failed (exit code 2)")
    assert "/no/such/dir" in problems[0]


def test_an_unset_variable_fails_its_block(tmp_path: Path) -> None:
    # Given a block using a variable no block before it set (a README step left out)
    broken = SAMPLE.replace('echo "$GREETING again"', 'echo "$FAREWELL again"')

    # When it runs, Then that block fails
    _, problems, _ = _run_sample(broken, tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("block 4 (line 24) failed")
    assert "FAREWELL: unbound variable" in problems[0]


def test_output_the_readme_shows_but_the_command_does_not_print_fails(tmp_path: Path) -> None:
    # Given a block that exits 0 but no longer prints what the README says it does
    broken = SAMPLE.replace('echo "$GREETING world"', 'echo "$GREETING there"')

    # When it runs
    _, problems, _ = _run_sample(broken, tmp_path)

    # Then the missing output is the problem, named with its block
    assert len(problems) == 1
    assert problems[0].startswith("block 2 (line 14): expected 'hello world' in its output")
    assert "hello there" in problems[0]


def test_a_block_that_hangs_fails_instead_of_blocking_the_test(tmp_path: Path) -> None:
    # Given a block that waits for ever (a server started by mistake)
    blocks = extract(SAMPLE.replace('echo "$GREETING again"', "sleep 600"))

    # When it runs with a timeout, Then the run ends and the block is named
    outcome = run(blocks, cwd=tmp_path, env={"PATH": os.environ["PATH"]}, timeout=2)
    assert len(outcome.problems) == 1
    assert outcome.problems[0].startswith("block 4 (line 24) failed (still running after 2 s)")


@pytest.mark.parametrize(
    ("markdown", "message"),
    [
        ("<!-- not-tested: -->\n```sh\nmake run\n```\n", "needs a reason"),
        ("<!-- not-tested: a reason -->\nsome text\n```sh\nls\n```\n", "is not just before a block"),
        ("<!-- not-tested: a reason -->\n```text\nls\n```\n", "is before a block that is not shell"),
        ("```sh\nls\n", "is never closed"),
        ("text\n<!-- needs: aws -->\n", "is not followed by a block"),
    ],
)
def test_a_marker_without_its_reason_or_its_block_is_an_error(markdown: str, message: str) -> None:
    # Given a marker that would skip nothing, or skip without saying why
    # When the README is read, Then it is refused, saying what is wrong
    with pytest.raises(ReadmeError, match=message):
        extract(markdown)


def test_every_block_of_the_readme_that_is_not_run_says_why() -> None:
    # Given the README, When its blocks are extracted (markers checked on the way)
    blocks = extract(README.read_text(encoding="utf-8"))

    # Then most of them run, and the ones that start the stack or deploy are marked
    run_blocks = [b for b in blocks if b.not_tested is None]
    assert len(run_blocks) >= 6
    for block in run_blocks:
        for line in block.code.splitlines():
            assert not _STARTS_OR_DEPLOYS.match(line), f"{block.where} runs {line!r}: mark it not-tested"


# ---- the README itself, against the local stack --------------------------------------------------


@dataclass(frozen=True)
class Stack:
    state: Path  # its CHATFLOW_STATE_DIR
    log: Path  # what it printed


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``make run`` (``python -m local.serve``) on free ports, for the tests of this module."""
    tmp_path = tmp_path_factory.mktemp("make-run")
    state = tmp_path / "state"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    environ |= {
        "CHATFLOW_HTTP_PORT": "0",
        "CHATFLOW_WS_PORT": "0",
        "CHATFLOW_PROVIDER_PORT": "0",
        "CHATFLOW_AWS_PORT": "0",
        "CHATFLOW_STATE_DIR": str(state),
        # No faults: the fake provider refuses 1 send in 30 for good, and the README waits for
        # three SMS (two sign-in codes, a confirmation): at the default rate it would fail 1
        # run in 10 although every command is right (the README says to ask again).
        "CHATFLOW_FAKE_FAILURE_RATE": "0",
        "PYTHONPATH": f"{ROOT / 'layers' / 'shared' / 'python'}{os.pathsep}{ROOT}",
    }
    log_path = tmp_path / "make-run.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(  # the local stack, as the Makefile starts it
            [sys.executable, "-m", "local.serve", "--fresh"],
            cwd=ROOT,
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STACK_START_SECONDS
        while "ChatFlow is running locally" not in log_path.read_text(encoding="utf-8"):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"make run did not start:\n{log_path.read_text(encoding='utf-8')[-3000:]}")
            time.sleep(0.2)
        yield Stack(state, log_path)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _comparable(text: str) -> str:
    """Without what differs from one start to the next: port numbers, the state directory."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)
    return re.sub(r"\S*/(outputs\.json|aws-state\.pickle)", r"<state dir>/\1", text)


def test_the_readme_shows_the_banner_make_run_prints(stack: Stack) -> None:
    # Given the banner the README shows, and the one make run printed
    readme = README.read_text(encoding="utf-8")
    shown = readme.split("`make run` prints where everything is", 1)[1].split("```", 2)[1]
    printed = _comparable(stack.log.read_text(encoding="utf-8"))

    # Then every line of the README's copy is a line make run printed (ports and paths aside)
    for line in shown.strip("\n").splitlines():
        assert _comparable(line) in printed, f"README banner line not printed by make run: {line!r}"


def test_the_readme_works_as_written_against_make_run(stack: Stack) -> None:
    # Given the README and a stack started as make run starts it
    blocks = extract(README.read_text(encoding="utf-8"))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CHATFLOW_")}
    environ |= {"CHATFLOW_STATE_DIR": str(stack.state), "PYTHONPATH": str(ROOT)}

    # When every block that is not marked is run, in order, in one shell, as a reader would, and
    # then all again in a new shell (a reader trying it twice: same numbers, same message ids)
    for attempt in ("first run", "second run"):
        outcome = run(blocks, cwd=ROOT, env=environ, timeout=README_SECONDS, prelude=CHATFLOW_CLI)

        # Then each exits 0 and prints the output the README shows for it, both times
        timings = ", ".join(f"block {n}: {seconds:.1f} s" for n, seconds in outcome.seconds.items())
        assert outcome.problems == (), "\n\n".join([attempt, *outcome.problems, timings])
        assert len(outcome.outputs) >= 6
        print(f"README blocks, {attempt} ({timings}); {'; '.join(outcome.skipped)}")
