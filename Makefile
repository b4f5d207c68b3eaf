# Shortcuts for the two commands at the top of README.md (they need no make).
PYTHON ?= python3
VENV := .venv

.PHONY: demo test dev clean

# A virtual environment with nearkit and GloVe, then the demo.
demo:
	$(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install '.[data]' && $(VENV)/bin/nearkit demo

# The test extra (peers, h5py, hypothesis, GloVe), then the whole suite. CI runs this.
test:
	$(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install '.[test]' && $(VENV)/bin/python -m pytest

# In-place build of the C++ core for development (PYTHONPATH=src python -m pytest).
dev:
	scripts/dev-build.sh

clean:
	rm -rf $(VENV) build src/nearkit/_core*.so
