# The commands README.md documents for working without Docker, and the test suites.
# Docker users need none of them: `docker compose up -d`.
POETRY ?= poetry
RUN := $(POETRY) -P Django run
PYTEST := cd Django && $(POETRY) run pytest -c pyproject.toml

.PHONY: deps native test test-docker lock faults soak prod-env bench bench-full bench-tune

## Install the locked environment: Django's dependencies, unit-test and proving-ground tools.
deps:
	$(POETRY) -P Django install --with dev,test

## Run nginx, Django, MariaDB and Redis natively: http://localhost:$${HTTP_PORT:-8000}.
native:
	$(RUN) python -m stack.native

## Lint, unit tests, static checks and whole-stack tests on real servers, natively.
test:
	$(PYTEST)

## The stack built and run on a Docker engine: every hop, faults, the README's workflow.
test-docker:
	$(PYTEST) ../stack/docker_tests

## Inject faults and hostile input into native stacks; print what survived (about 1 min).
faults:
	$(RUN) python -m stack.faults $(if $(LAYER),--layer $(LAYER))

## Connection churn beside idle sockets; prints memory, fds, Redis and MySQL connections.
## DURATION seconds after a 60 s warm-up; SETTINGS=dev|prod; TARGET=native|docker.
soak:
	$(RUN) python -m stack.soak --duration $(or $(DURATION),600) \
	  --settings $(or $(SETTINGS),dev) --target $(or $(TARGET),native)

## Benchmarks: HTTP, WebSocket echo, broadcast; ours vs the book's vs daphne (< 3 min).
bench:
	$(RUN) python -m stack.bench --mode quick

## The same with longer runs and 1000 receivers, for publishing.
bench-full:
	$(RUN) python -m stack.bench --mode full

## The sweep the defaults come from: workers, compression, layer, capacity (about 8 min).
bench-tune:
	$(RUN) python -m stack.bench --mode tune

## Write the production env files (*.prod, never committed) with random secrets.
prod-env:
	sh prod-env.sh

## Re-lock after editing Django/pyproject.toml by hand (poetry add does this itself).
lock:
	$(POETRY) -P Django lock
