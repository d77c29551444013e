"""`make deploy-web`: the web client uploaded to a stack's bucket, told where the stack's APIs are.

AWS is out of reach here, so the target runs against a stand-in ``aws`` command first on
PATH: it answers ``cloudformation describe-stacks`` with the outputs a test gives, and writes
down every other call (and the page ``s3 cp`` uploads) for the test to read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make") or "make"
STACK = ("STACK=chatflow-test", "REGION=eu-west-1")

FAKE_AWS = """\
import json, re, shutil, sys
from pathlib import Path

here = Path(__file__).parent
args = sys.argv[1:]
with (here / "calls.jsonl").open("a") as calls:
    calls.write(json.dumps(args) + "\\n")
if args[:2] == ["cloudformation", "describe-stacks"]:
    query = args[args.index("--query") + 1]
    key = re.search(r"OutputKey=='(\\w+)'", query).group(1)
    outputs = json.loads((here / "outputs.json").read_text())
    print(outputs.get(key, "None"))
elif args[:2] == ["s3", "cp"]:
    shutil.copy(args[2], here / "uploaded-index.html")
elif args[:2] == ["cloudfront", "create-invalidation"]:
    print("I2J0EXAMPLE")
"""

OUTPUTS = {
    "WebClientBucketName": "chatflow-dev-webclientbucket-abc123",
    "WebClientDistributionId": "E2EXAMPLE",
    "WebClientUrl": "https://d111111abcdef8.cloudfront.net",
    "HttpApiUrl": "https://a1b2c3.execute-api.eu-west-1.amazonaws.com",
    "WebSocketUrl": "wss://d4e5f6.execute-api.eu-west-1.amazonaws.com/dev",
}


Calls = list[list[str]]


def _deploy_web(tmp_path: Path, outputs: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], Calls]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "aws"
    script.write_text(f"#!{sys.executable}\n{FAKE_AWS}")
    script.chmod(0o755)
    (bin_dir / "outputs.json").write_text(json.dumps(outputs))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    # -o: the project's virtualenv is there already (the tests run from it); never reinstall it.
    done = subprocess.run(  # noqa: S603 - make on the project's own Makefile
        [MAKE, "--no-print-directory", "-o", ".venv/bin/.stamp", "deploy-web", *STACK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    calls_file = bin_dir / "calls.jsonl"
    calls = [json.loads(line) for line in calls_file.read_text().splitlines()] if calls_file.exists() else []
    return done, calls


def test_the_uploaded_page_names_the_stacks_apis_and_the_rest_of_web_is_synced(tmp_path: Path) -> None:
    # Given a stack deployed with DeployWebClient=true (its outputs)
    # When make deploy-web runs
    done, calls = _deploy_web(tmp_path, OUTPUTS)

    # Then it succeeds and says where the web client is
    assert done.returncode == 0, done.stderr
    assert "web client: https://d111111abcdef8.cloudfront.net" in done.stdout
    # And the stack it read is the one asked for, in that Region
    described = [c for c in calls if c[:2] == ["cloudformation", "describe-stacks"]]
    assert described
    assert all("chatflow-test" in c and "eu-west-1" in c for c in described)
    # And web/ went to the stack's bucket, index.html apart, files gone from web/ deleted there
    (sync,) = [c for c in calls if c[:2] == ["s3", "sync"]]
    assert sync[2:4] == ["web/", "s3://chatflow-dev-webclientbucket-abc123/"]
    assert "--delete" in sync
    assert sync[sync.index("--exclude") + 1] == "index.html"
    # And index.html was uploaded, never cached stale, telling the client the stack's two URLs
    (copy,) = [c for c in calls if c[:2] == ["s3", "cp"]]
    assert copy[3] == "s3://chatflow-dev-webclientbucket-abc123/index.html"
    assert copy[copy.index("--cache-control") + 1] == "no-cache"
    page = (tmp_path / "bin" / "uploaded-index.html").read_text()
    assert f'<meta name="chatflow-api-url" content="{OUTPUTS["HttpApiUrl"]}">' in page
    assert f'<meta name="chatflow-ws-url" content="{OUTPUTS["WebSocketUrl"]}">' in page
    # And CloudFront's cached copies of the old files were invalidated, after both uploads
    (invalidation,) = [c for c in calls if c[:2] == ["cloudfront", "create-invalidation"]]
    assert invalidation[invalidation.index("--distribution-id") + 1] == "E2EXAMPLE"
    assert invalidation[invalidation.index("--paths") + 1] == "/*"
    assert calls.index(invalidation) > calls.index(copy) > calls.index(sync)


def test_a_stack_without_the_web_client_is_refused_before_any_upload(tmp_path: Path) -> None:
    # Given a stack deployed with the default DeployWebClient=false (no web client outputs)
    outputs = {k: v for k, v in OUTPUTS.items() if not k.startswith("WebClient")}

    # When make deploy-web runs
    done, calls = _deploy_web(tmp_path, outputs)

    # Then it fails saying how to get one, and uploaded nothing
    assert done.returncode != 0
    assert "deploy it with DeployWebClient=true" in done.stderr
    assert not [c for c in calls if c[0] in ("s3", "cloudfront")]


def test_without_the_aws_cli_it_says_so(tmp_path: Path) -> None:
    # Given a PATH with make and a shell but no aws command
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "bash", "env"):
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)

    # When make deploy-web runs
    done = subprocess.run(  # noqa: S603 - make on the project's own Makefile
        [str(bin_dir / "make"), "--no-print-directory", "-o", ".venv/bin/.stamp", "deploy-web"],
        cwd=ROOT,
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it stops at once and names what is missing
    assert done.returncode == 2
    assert "make deploy-web needs the AWS CLI (aws)" in done.stderr
