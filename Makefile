# The commands README.md documents for working without Docker, and the test suites.
# Docker users need none of them: `docker compose up -d`.
POETRY ?= poetry
# One virtualenv for the proving ground and the app it runs natively.
VENV := $(CURDIR)/.venv
INSTALL := VIRTUAL_ENV=$(VENV) $(POETRY)
PYTHON := $(VENV)/bin/python

.PHONY: deps native test test-unit test-stack test-docker lock faults failover spread slow-client storm soak prod-env bench bench-full bench-tune bench-metrics bench-scale bench-clients bench-memory bench-presence bench-profile bench-fanout lines

## Install the locked environments into .venv: the proving ground's tools, then Django's
## dependencies and unit-test tools (last, so the app's pins win where both name a package).
deps:
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(INSTALL) -P proving_ground install
	$(INSTALL) -P Django install --with test
	cd proving_ground/peers/node_ws && npm ci --no-audit --no-fund --silent

## Run nginx, Django, MariaDB and Redis natively: http://localhost:$${HTTP_PORT:-8000}.
native:
	$(PYTHON) -m proving_ground native

## Unit tests, then lint, static checks and whole-stack tests on real servers, natively.
test: test-unit test-stack

test-unit:
	cd Django && $(PYTHON) -m pytest

test-stack:
	cd proving_ground && $(PYTHON) -m pytest

## The stack built and run on a Docker engine: every hop, faults, the README's workflow.
test-docker:
	cd proving_ground && $(PYTHON) -m pytest docker_tests

## Inject faults and hostile input into native stacks; print what survived (about 1 min).
faults:
	$(PYTHON) -m proving_ground faults $(if $(LAYER),--layer $(LAYER))

## Kill the Redis primary behind Sentinels on fresh stacks, RUNS times (default 10, about
## 1.5 min each); prints each recovery.
failover:
	$(PYTHON) -m proving_ground failover --runs $(or $(RUNS),10)

## How 1000 sockets spread over two Uvicorn workers, with reuse_port on and off (1 min).
spread:
	$(PYTHON) -m proving_ground spread

## A socket that stops reading in a busy room: when it is closed, the worker's memory,
## the other sockets' p99 delivery with and without it, and its account once it resumes.
slow-client:
	$(PYTHON) -m proving_ground slow-client

## 500 sockets in 10 rooms, `docker compose restart django`: the time until the last has
## resumed, MySQL's CPU meanwhile, and every client's account (containers; about 3 min).
storm:
	$(PYTHON) -m proving_ground storm

## Connection churn; prints memory, fds, Redis and MySQL connections. DURATION seconds
## after a WARMUP (default 60 s); SETTINGS=dev|prod; TARGET=native|docker;
## PATTERN=churn (beside idle sockets) or sessions (quick sessions, no idle sockets);
## RESTART_EVERY=S restarts a worker every S seconds (sessions only).
soak:
	$(PYTHON) -m proving_ground soak --duration $(or $(DURATION),600) \
	  --warmup $(or $(WARMUP),60) --pattern $(or $(PATTERN),churn) \
	  --settings $(or $(SETTINGS),dev) --target $(or $(TARGET),native) \
	  --restart-every $(or $(RESTART_EVERY),0)

## Benchmarks: HTTP, WebSocket echo, broadcast; ours vs the book's vs daphne (< 3 min).
bench:
	$(PYTHON) -m proving_ground bench --mode quick

## The same with longer runs and 1000 receivers, for publishing.
bench-full:
	$(PYTHON) -m proving_ground bench --mode full

## What Prometheus metrics cost: ours with METRICS on and off, in turn, and the
## instructions per operation callgrind counts (about 20 min).
bench-metrics:
	$(PYTHON) -m proving_ground bench --mode metrics

## Clients one machine serves, websocket-shootout method: the stack (each layer),
## daphne, a Node server on ws and a Python one on websockets. MODE=quick|full|smoke;
## SERVERS=fanout,node runs only those (keys: fanout, fanout-chat, core, pubsub,
## daphne, node, websockets).
bench-clients:
	$(PYTHON) -m proving_ground bench-clients --mode $(or $(MODE),quick) \
	  $(if $(SERVERS),--servers $(SERVERS))

## Where an idle socket's worker memory goes: RSS, then tracemalloc by package (about 2 min).
bench-memory:
	$(PYTHON) -m proving_ground bench-memory --mode $(or $(MODE),quick)

## Where the workers' CPU goes during a broadcast (py-spy on each worker), and what the
## metrics take of it, on and off (about 5 min).
bench-profile:
	$(PYTHON) -m proving_ground bench-profile --mode $(or $(MODE),quick)

## One worker's fan-out: 1000 sockets in a group, broadcasts 4 in flight; deliveries a
## second, completion p50/p95, worker and Redis CPU per delivery, by layer and route
## (at most 3 min).
bench-fanout:
	$(PYTHON) -m proving_ground bench-fanout --mode $(or $(MODE),quick)

## What presence costs: Redis commands per idle socket per minute, joins and broadcast
## throughput, presence on and off (about 5 min).
bench-presence:
	$(PYTHON) -m proving_ground bench-presence --mode $(or $(MODE),quick)

## The sweep the defaults come from: workers, compression, layer, capacity (about 8 min).
bench-tune:
	$(PYTHON) -m proving_ground bench --mode tune

## Scale-out figures: upstream keepalive's cost, and the ladder's rungs in containers
## (one container, replicas, sharded Redis, Sentinel with a failover, Swarm); about 8 min.
bench-scale:
	$(PYTHON) -m proving_ground bench-scale

## Write the production env files (*.prod, never committed) with random secrets.
prod-env:
	sh prod-env.sh

## Re-lock after editing a pyproject.toml by hand (poetry add does this itself).
lock:
	$(POETRY) -P Django lock
	$(POETRY) -P proving_ground lock

## How big each part of Django/ is: the book's stack, the machinery it runs, the realtime
## base and the worked example (a copy stripped as README's "The book's stack alone" says).
lines:
	$(PYTHON) -m proving_ground lines
