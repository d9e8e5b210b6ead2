# Utilis: the two commands a newcomer needs are `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV            ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
DEMO_ACCOUNTS ?= 10000
PYTEST_ARGS   ?=
# make loadtest: Locust users, users started per second, seconds of load, uvicorn workers per API process
USERS         ?= 150
SPAWN_RATE    ?= 15
DURATION      ?= 180
REPLICAS      ?= 1
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install infra up down status test test-unit lint format bench bench-import bench-view bench-gateway bench-billing bench-payment loadtest reset events-schemas \
        helm-lint helm-template check-deploy deploy-manifests check-observability dashboards

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

install: ## install what is missing: uv, Python deps (from uv.lock), Debian packages, Kafka jars
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --all-packages --frozen --quiet
	bash scripts/infra.sh install

infra: install ## start PostgreSQL, Redis and Kafka (idempotent)
	bash scripts/infra.sh start

up: infra ## everything: infra, databases, topics, migrations, demo data, all services; prints the URLs
	$(UV) run python scripts/stack.py up --demo-accounts $(DEMO_ACCOUNTS)

down: ## stop the services, then the infrastructure (nothing else)
	-@[ -x .venv/bin/python ] && .venv/bin/python scripts/stack.py down
	bash scripts/infra.sh stop

status: ## what runs
	@bash scripts/infra.sh status
	@[ -x .venv/bin/python ] && .venv/bin/python scripts/stack.py status || true

test: infra ## the same set-up (no demo data), then lint, unit, integration and end-to-end tests
	@status=0; \
	$(UV) run python scripts/stack.py up --demo-accounts 0 && \
	$(UV) run ruff check . && \
	$(UV) run pytest $(PYTEST_ARGS) || status=$$?; \
	if [ -n "$$CI" ]; then $(MAKE) --no-print-directory down; fi; \
	exit $$status

test-unit: ## unit tests only (no infrastructure needed)
	$(UV) run pytest -m "not integration" $(PYTEST_ARGS)

lint: ## ruff lint and format check
	$(UV) run ruff check .
	$(UV) run ruff format --check .

format: ## apply ruff formatting and safe fixes
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

bench: bench-import bench-view bench-gateway bench-billing bench-payment ## every benchmark (prints figures, asserts nothing)

bench-import: infra ## import throughput for 100,000 generated archive rows
	$(UV) run python scripts/bench_import.py --rows 100000

bench-view: infra ## 360° view latency (p50/p99) next to a bare endpoint in the same run
	$(UV) run python scripts/bench_view.py

bench-gateway: infra ## the same service call direct and through the gateway: req/s, p50/p99, ratios
	$(UV) run python scripts/bench_gateway.py

bench-billing: infra ## billing-run bills/s at 10k and 100k accounts; cached bill lookups next to /livez
	$(UV) run python scripts/bench_billing.py --sizes 10000,100000

bench-payment: infra ## payments end to end on the running stack: created + called back + settled per second
	$(UV) run python scripts/stack.py up --demo-accounts 0
	$(UV) run python scripts/bench_payment.py --payments 2000

loadtest: infra ## Locust through the gateway (USERS, SPAWN_RATE, DURATION s, REPLICAS), then the audit; reports in .local/loadtest/
	$(UV) run python scripts/stack.py up --demo-accounts $(DEMO_ACCOUNTS)
	$(UV) run python -m loadtests.run full --users $(USERS) --spawn-rate $(SPAWN_RATE) --duration $(DURATION) --replicas $(REPLICAS)

events-schemas: ## regenerate the JSON Schemas of every service's events
	$(UV) run customer events-schemas
	$(UV) run metering-and-billing events-schemas
	$(UV) run payment events-schemas

helm-lint: ## helm lint --strict of helm/utilis with its default, dev and prod values (offline)
	$(UV) run python scripts/deploy_check.py lint

helm-template: ## render helm/utilis with each values file into .local/helm/<values>.yaml (offline)
	$(UV) run python scripts/deploy_check.py render --out .local/helm

deploy-manifests: ## regenerate deploy/k8s (kustomize base + dev/prod overlays) from the chart
	$(UV) run python scripts/deploy_check.py render-k8s

check-deploy: ## chart lint + render + schema validation, deploy/k8s in step, Dockerfile checks (offline)
	$(UV) run python scripts/deploy_check.py all

dashboards: ## regenerate the Grafana dashboards (helm/utilis/files/dashboards) from scripts/dashboards.py, and deploy/k8s
	$(UV) run python scripts/dashboards.py
	$(UV) run python scripts/deploy_check.py render-k8s

check-observability: infra ## alert rules (promtool check + unit tests), PromQL parses, dashboards in step; metric names against the running stack
	$(UV) run python scripts/stack.py up --demo-accounts 0
	$(UV) run pytest tests/observability -q $(PYTEST_ARGS)

reset: down ## stop everything and delete local data (keeps downloaded jars)
	bash scripts/infra.sh reset
	rm -rf .local/run .local/logs .local/keys
