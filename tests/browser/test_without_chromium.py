"""Without Debian's Chromium the browser tests are skipped, saying why; on CI they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from local.template import ROOT
from tests.browser.test_web_client import missing_browser

BROWSER_TESTS = "tests/browser/test_web_client.py"


def run_browser_tests(chromium: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    """The browser test module in a pytest of its own, told to use ``chromium``."""
    environ = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("PYTEST_")}
    environ["CHATFLOW_CHROMIUM"] = str(chromium)
    if ci:
        environ["CI"] = "true"
    return subprocess.run(  # noqa: S603 - this interpreter, our own test module
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", BROWSER_TESTS],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_missing_chromium_skips_every_browser_test_with_the_reason(tmp_path: Path) -> None:
    # Given a machine where the browser is not installed
    missing = tmp_path / "chromium"

    # When the browser tests run
    run = run_browser_tests(missing, ci=False)

    # Then the run passes, every test skipped with what to do, and none ran
    assert run.returncode == 0, run.stdout + run.stderr
    assert "passed" not in run.stdout
    assert " skipped" in run.stdout
    assert f"Debian's chromium is not installed ({missing} is missing)" in run.stdout


def test_on_ci_a_missing_chromium_fails_instead(tmp_path: Path) -> None:
    # Given CI, where the browser tests must run, and no browser
    # When they run
    run = run_browser_tests(tmp_path / "chromium", ci=True)

    # Then the run fails, saying CI must run them
    assert run.returncode != 0
    assert "CI must run the browser tests" in run.stdout


def test_a_user_who_is_not_root_is_told_how_to_install_it(tmp_path: Path) -> None:
    reason = missing_browser(tmp_path / "chromium", root=False)
    assert reason is not None
    assert "installing it needs root: run `sudo apt-get install chromium` or `make browser` as root" in reason


def test_root_is_told_to_run_make_browser(tmp_path: Path) -> None:
    reason = missing_browser(tmp_path / "chromium", root=True)
    assert reason is not None
    assert reason.endswith("run `make browser`")


def test_an_installed_browser_is_not_a_reason_to_skip(tmp_path: Path) -> None:
    # Given an executable where the browser is expected
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)

    # Then nothing stops the browser tests
    assert missing_browser(browser, root=False) is None
