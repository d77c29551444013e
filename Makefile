# ChatFlow developer commands. Every target sets up what it needs first.
SHELL := /bin/bash
export SAM_CLI_TELEMETRY := 0
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
BIN := $(VENV)/bin
SAM := $(SAM_VENV)/bin/sam
REGION ?= us-east-1
# The browser tests (tests/browser) drive Debian's Chromium with Playwright; Playwright's
# own browser download is never used. Without it (and not root) they are skipped, saying why.
CHROMIUM := /usr/bin/chromium
# sam build needs the Lambda runtime's Python (3.12) on PATH; pyenv exposes it this way.
SAM_PYENV ?= 3.11.7:3.12.1
# pip: errors only, no progress bars (make PIP_QUIET= shows everything).
PIP_QUIET ?= -qq --progress-bar off
# uv installs the virtualenvs: it resolves, downloads in parallel and links from its cache,
# where pip took about 75 s for the three on this 2-core machine (uv: about 7 s; both with
# their caches warm).
UV_VERSION := 0.13.9
UV := $(BIN)/uv
# One stamp per uv version: a new UV_VERSION installs that uv into an existing $(VENV).
UV_STAMP := $(VENV)/.uv-$(UV_VERSION)
UV_QUIET ?= -q

.DEFAULT_GOAL := help
.PHONY: help venv test check lint format typecheck unit validate build bench lock clean run invoke browser browser-if-root deploy-web

help:
	@echo "make run     start the whole stack locally (no AWS account, no Docker); ARGS=--fresh starts clean"
	@echo "make invoke  FN=<logical id> EVENT=events/<file>.json: run one function once on an event"
	@echo "make test    lint, format check, types, every test, sam validate (what CI runs)"
	@echo "make build   sam build, then precompile the output to .pyc"
	@echo "make deploy-web  upload web/ to a stack deployed with DeployWebClient=true (STACK=chatflow-dev, REGION)"
	@echo "make bench   benchmarks (AWS calls per operation, cold start); writes docs/benchmarks.md"
	@echo "make docs    regenerate docs/openapi.json and docs/asyncapi.yaml from the code"
	@echo "make lock    re-freeze requirements/dev.txt from requirements/dev.in"
	@echo "make browser install Debian's Chromium for the browser tests (needs root; make test does it as root)"

# Installs say one line; uv's and pip's own output is errors only (UV_QUIET, PIP_QUIET; a failure
# still prints its error). uv itself is the one package pip installs (into $(VENV), which keeps
# pip for `make lock`).
$(UV_STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install $(PIP_QUIET) uv==$(UV_VERSION)
	@touch $@

$(BIN)/.stamp: requirements/dev.txt layers/shared/python/requirements.txt pyproject.toml | $(UV_STAMP)
	@echo "installing $(VENV) from requirements/dev.txt..."
	@# setuptools >= 70.1 builds the editable install of the CLI below without the `wheel` package.
	@$(UV) pip install $(UV_QUIET) --python $(BIN)/python setuptools==84.2.1 -r requirements/dev.txt
	@# The operator CLI: puts the `chatflow` console script in $(BIN) (editable, no download).
	@$(UV) pip install $(UV_QUIET) --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $@

# Tools that pin their own dependencies (aws-sam-cli: boto3, pydantic, click; checkov for
# make validate) each get a virtualenv of their own: .venv-<tool> from requirements/<tool>.txt.
CHECKOV_VENV := .venv-checkov
$(SAM_VENV)/.stamp $(CHECKOV_VENV)/.stamp: .venv-%/.stamp: requirements/%.txt | $(UV_STAMP)
	@echo "installing .venv-$* from $<..."
	@test -x .venv-$*/bin/python || $(PYTHON) -m venv --without-pip .venv-$*
	@$(UV) pip install $(UV_QUIET) --python .venv-$*/bin/python -r $<
	@touch $@

venv: $(BIN)/.stamp $(SAM_VENV)/.stamp

# Debian's Chromium for the browser tests, installed when missing; apt-get needs root.
browser:
	@if [ -x $(CHROMIUM) ]; then echo "$(CHROMIUM) is installed"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "make browser: installing Debian's chromium needs root: run 'sudo apt-get install chromium' or 'make browser' as root" >&2; \
	  exit 1; \
	else \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium && \
	  test -x $(CHROMIUM); \
	fi

# make test installs Chromium only when it is missing and it may (root, as on CI); anyone else
# gets the browser tests skipped with the reason (tests/browser/test_web_client.py).
browser-if-root:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory browser; fi

lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements/dev.in
	( echo "# Frozen from requirements/dev.in by 'make lock'; do not edit by hand."; \
	  $(BIN)/python -m pip freeze --exclude-editable ) > requirements/dev.txt

lint: $(BIN)/.stamp
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.stamp
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(BIN)/.stamp
	$(BESIDE_TESTS) $(BIN)/mypy layers/shared/python/chatflow local
	$(BESIDE_TESTS) $(BIN)/mypy chatflow_cli
	# Every function has its own app.py: check each as its own program.
	for fn in functions/*/app.py; do $(BESIDE_TESTS) $(BIN)/mypy "$$fn" || exit 1; done
	$(BESIDE_TESTS) $(BIN)/mypy tests bench

# loadgroup: tests marked xdist_group (the browser tests) share one worker, so one stack and one browser.
# --durations: the slowest tests in every log, for the 10-minute budget of make test.
unit: $(BIN)/.stamp browser-if-root
	$(BIN)/pytest -q -n auto --dist loadgroup --durations=20

# checkov offline: no version check, no download of guidelines or policies (docs/security.md).
CHECKOV := env CKV_SKIP_PACKAGE_UPDATE_CHECK=true BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov \
	--framework cloudformation --skip-download --quiet --compact

validate: $(SAM_VENV)/.stamp $(CHECKOV_VENV)/.stamp
	$(BESIDE_TESTS) $(SAM) validate --region $(REGION)
	$(BESIDE_TESTS) $(SAM) validate --lint --region $(REGION)
	$(BESIDE_TESTS) $(CHECKOV) -f template.yaml
	@# checkov leaves out resources whose Condition it finds false with the parameters' defaults
	@# (the web client's): they are checked in a copy whose DeployWebClient defaults to "true".
	@dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	sed '/^  DeployWebClient:/,/^  [A-Za-z]/ s/Default: "false"/Default: "true"/' template.yaml > "$$dir/template.yaml"; \
	if cmp -s template.yaml "$$dir/template.yaml"; then \
	  echo 'make validate: no DeployWebClient Default: "false" to turn on in template.yaml' >&2; exit 1; \
	fi; \
	echo "checkov -f template.yaml with DeployWebClient=true"; \
	$(BESIDE_TESTS) $(CHECKOV) -f "$$dir/template.yaml"

# lint first (seconds), then the types, the tests and the template's checks side by side: the
# tests wait on the stacks' timers part of the time (a fifth of the cores sat idle), which mypy,
# sam validate and checkov fill (about 65 s of CPU), at the lowest priority (BESIDE_TESTS) so that
# they take no CPU the tests want. Each target's output is printed whole, when it ends.
check: lint
	@$(MAKE) --no-print-directory -j3 --output-sync=target typecheck unit validate BESIDE_TESTS="nice -n 19"

test: check

build: $(SAM_VENV)/.stamp
	PYENV_VERSION=$(SAM_PYENV) $(SAM) build
	PYENV_VERSION=$(SAM_PYENV) python3.12 -m compileall -q -j 0 --invalidation-mode unchecked-hash .aws-sam/build

# The web client on AWS, for a stack deployed with DeployWebClient=true (README, "Deploy"):
# web/ to the stack's bucket, index.html naming the stack's HttpApiUrl and WebSocketUrl (the
# <meta> tags web/js/config.js reads, filled as the local stack does), then CloudFront's cache
# invalidated. Needs the AWS CLI and credentials.
STACK ?= chatflow-dev
deploy-web: $(BIN)/.stamp
	@command -v aws >/dev/null || { echo "make deploy-web needs the AWS CLI (aws) and credentials" >&2; exit 2; }
	@set -euo pipefail; \
	output() { aws cloudformation describe-stacks --region "$(REGION)" --stack-name "$(STACK)" \
	  --query "Stacks[0].Outputs[?OutputKey=='$$1'].OutputValue | [0]" --output text; }; \
	bucket=$$(output WebClientBucketName); \
	if [ -z "$$bucket" ] || [ "$$bucket" = None ]; then \
	  echo "make deploy-web: stack $(STACK) has no web client: deploy it with DeployWebClient=true (README, Deploy)" >&2; \
	  exit 1; \
	fi; \
	distribution=$$(output WebClientDistributionId); api=$$(output HttpApiUrl); ws=$$(output WebSocketUrl); \
	page=$$(mktemp); trap 'rm -f "$$page"' EXIT; \
	PYTHONPATH=layers/shared/python:. $(BIN)/python -c 'import sys; from local.edge import render_index; \
	  sys.stdout.write(render_index(sys.stdin.read(), sys.argv[1], sys.argv[2]))' "$$api" "$$ws" < web/index.html > "$$page"; \
	grep -qF "content=\"$$api\"" "$$page" || { echo "make deploy-web: web/index.html has no chatflow-api-url meta tag" >&2; exit 1; }; \
	aws s3 sync web/ "s3://$$bucket/" --region "$(REGION)" --delete --exclude index.html --cache-control "public, max-age=300"; \
	aws s3 cp "$$page" "s3://$$bucket/index.html" --region "$(REGION)" --content-type "text/html; charset=utf-8" --cache-control no-cache; \
	aws cloudfront create-invalidation --distribution-id "$$distribution" --paths "/*" --output text --query Invalidation.Id; \
	echo "web client: $$(output WebClientUrl) (API $$api, WebSocket $$ws)"

# The API reference generated from the code (docs/api.md, "Generated documents"); docs/ is a
# directory, hence phony.
.PHONY: docs
docs: $(BIN)/.stamp
	PYTHONPATH=layers/shared/python:. $(BIN)/python -m local.api_docs

bench: $(BIN)/.stamp
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.faults

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .mypy_cache .pytest_cache .ruff_cache

run: $(BIN)/.stamp
	PYTHONPATH=layers/shared/python:. $(BIN)/python -m local.serve $(ARGS)

invoke: $(BIN)/.stamp
	@test -n "$(FN)" -a -n "$(EVENT)" || { echo "usage: make invoke FN=<logical id> EVENT=events/<file>.json (the samples: README.md, 'Running one function')"; exit 2; }
	PYTHONPATH=layers/shared/python:. $(BIN)/python -m local.invoke "$(FN)" "$(EVENT)"
