# Two entry points: `make demo` and `make test`. Both build .venv from nothing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv clean continue

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# CPU build of torch first, so the package's torch range is already satisfied (no CUDA wheels).
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

demo: $(STAMP)
	$(BIN)/inpaintlab demo --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/python -m pytest -q

# Continue training the shipped default in the background (one thread, resumable, outside the work tree):
# `make continue` (or `make continue PRESET=lgnet_compact_texture`: another recipe); follow it with
# `tail -f $(RUN)/train.log`, ship it by the ledger's rule with `inpaintlab ship-continued`
# (README: "Keep the default improving"). One run folder per starting weights (the first 8 hex digits of
# the shipped file's SHA-256, from its card) and seed: running it again resumes the segment, and after a
# ship it starts the next one instead of finding the last one finished. The seed (data order, masks, init
# of the discriminator) is the number of segments the card's ledger holds, so a segment that was refused is
# not re-run bit for bit from the same weights: the next one draws other batches.
DATA ?= $(or $(INPAINTLAB_DATA),../shared/datasets)
RUNS ?= $(HOME)/runs
PRESET ?= lgnet_compact_texture_x3
START := $(shell grep -m1 -o '"sha256": "[0-9a-f]\{8\}' src/inpaintlab/weights/lgnet_compact.json | tail -c 9)
SEED ?= $(shell grep -c '"why":' src/inpaintlab/weights/lgnet_compact.json)
RUN ?= $(RUNS)/$(PRESET)-$(START)-seed$(SEED)
# bf16 autocast only where the CPU has bf16 units (AMX or AVX512-BF16); emulated bf16 is slower than fp32
AMP ?= $(if $(shell grep -m1 -o 'amx_bf16\|avx512_bf16' /proc/cpuinfo 2>/dev/null),bf16,none)
# more train options, e.g. a shorter schedule: SET="--set optim.epochs_constant=4 --set optim.epochs_decay=6"
SET ?=
continue: $(STAMP)
	test -f $(RUNS)/split/train_images.txt || $(BIN)/inpaintlab split $(DATA) --out $(RUNS)/split
	mkdir -p $(RUN)
	OMP_NUM_THREADS=1 setsid nohup $(BIN)/inpaintlab train --preset $(PRESET) \
	  --out $(RUN) --resume auto --amp $(AMP) --set seed=$(SEED) \
	  --set data.root=$(RUNS)/split/train_images.txt --set masks.source=$(RUNS)/split/train_masks.txt \
	  --set data.val_root=$(RUNS)/split/heldout_images.txt --set masks.val_source=$(RUNS)/split/heldout_masks.txt \
	  $(SET) >> $(RUN)/train.log 2>&1 < /dev/null &
	@echo "training in the background: $(RUN) (log: train.log)"

clean:
	rm -rf $(VENV) runs
