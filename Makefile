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

# One training segment of the shipped default in the background (one thread, resumable, outside the work
# tree): `inpaintlab continue` trains the recipe from the shipped weights, evaluates the shipped weights,
# Telea and the segment on the held-out split, and ships by the ledger's rule (src/inpaintlab/continuation.py;
# README: "Keep the default improving"). `make continue` (or `make continue PRESET=lgnet_compact_texture`:
# another recipe); follow it with `tail -f RUN/train.log`; its verdict lands in RUN/segment.json. The run
# folder is named by the shipped weights and the seed (the ledger's row count): running it again resumes the
# segment, and after a ship or a refusal it starts the next one.
DATA ?= $(or $(INPAINTLAB_DATA),../shared/datasets)
RUNS ?= $(HOME)/runs
PRESET ?=
# bf16 autocast only where the CPU has bf16 units (AMX or AVX512-BF16); emulated bf16 is slower than fp32
AMP ?= $(if $(shell grep -m1 -o 'amx_bf16\|avx512_bf16' /proc/cpuinfo 2>/dev/null),bf16,none)
# more train options, e.g. a shorter schedule: SET="--set optim.epochs_constant=4 --set optim.epochs_decay=6"
SET ?=
SEGMENT := $(BIN)/inpaintlab continue --runs $(RUNS) $(if $(PRESET),--preset $(PRESET))

continue: $(STAMP)
	@run=$$($(SEGMENT) $(SET) --plan) || exit 1; mkdir -p $$run; \
	OMP_NUM_THREADS=1 setsid nohup $(SEGMENT) --data $(DATA) --amp $(AMP) $(SET) >> $$run/train.log 2>&1 < /dev/null & \
	echo "one segment in the background: $$run (log: train.log; verdict at its end: segment.json)"

clean:
	rm -rf $(VENV) runs
