# The two commands of the README: `make demo` (the main job on synthetic data) and `make test`.
# Each sets itself up on a fresh machine: a virtual environment, torch first (the local CPU wheel,
# so pip does not pull a multi-GB CUDA build), then this package with its test extras.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.utal-installed
SEED ?= 0
DATA ?= data/synthetic_small
RUN ?= runs/synthetic_small/baseline
CONFIGS ?= configs/synthetic_copl.yaml configs/synthetic_feel.yaml

.PHONY: install demo lint test clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,wandb]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/utal synth --preset small --out $(DATA) --seed $(SEED) --overwrite
	$(BIN)/utal check --root $(DATA)
	$(BIN)/utal baseline --root $(DATA) --out $(RUN)/detections.json --config configs/synthetic_copl.yaml --seed $(SEED)
	$(BIN)/utal evaluate --gt $(DATA)/gt.json --pred $(RUN)/detections.json --subset test --preset thumos --out $(RUN)/map.json
	for config in $(CONFIGS); do $(BIN)/utal fit --config $$config --data.init_args.root $(DATA) --trainer.enable_progress_bar=false --overwrite || exit 1; done

# Lint (ruff check + format check, configured in pyproject.toml) first, then the tests: one pytest-xdist
# worker per core, each test file on one worker (its module fixtures built once); --durations keeps the
# slow ones visible.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The `utal view` test opens its page in Debian's headless Chromium (installed here when missing; root or sudo).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(CHROMIUM):
	$(SUDO) apt-get install -y chromium || ($(SUDO) apt-get update && $(SUDO) apt-get install -y chromium)

test: lint $(CHROMIUM)
	UTAL_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -n auto --dist loadfile --durations=25

clean:
	rm -rf $(VENV) data runs
