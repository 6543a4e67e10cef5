# The commands README.md documents. Docker users need none of them: `docker compose up -d`.
POETRY ?= poetry
RUN := $(POETRY) -P Django run

.PHONY: deps native test lock faults prod-env bench bench-full bench-tune

## Install the locked environment (Django's dependencies plus the test tools).
deps:
	@$(POETRY) -P Django install --with dev || { \
	  echo "poetry install failed; if your index lacks Poetry's JSON API, installing the same lock with pip"; \
	  python3 stack/poetry_index.py install --with dev; }

## Run nginx, Django, MariaDB and Redis natively: http://localhost:$${HTTP_PORT:-8000}.
native:
	$(RUN) python -m stack.native

## Everything: lint, unit tests, static checks and whole-stack tests on real servers.
test:
	cd Django && $(POETRY) run pytest

## Inject faults and hostile input into native stacks; print what survived (about 1 min).
faults:
	$(RUN) python -m stack.faults $(if $(LAYER),--layer $(LAYER))

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
	$(RUN) python -m stack.prod_env

## Re-lock after editing Django/pyproject.toml by hand (poetry add does this itself).
lock:
	@$(POETRY) -P Django lock || python3 stack/poetry_index.py lock
