# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench,tuners]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m nas_core register --quiet
	$(PY) -m nas_core search examples/digits/config.yml

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# The fast lane: no NNI experiment, no browser, nothing marked slow.
test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info
