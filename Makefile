# Each target makes .venv and installs what it needs by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: test run lint clean bench bench-tools sysdeps docs

# fusco_actor/_version.py too: the installed metadata carries the version, so a bump
# reinstalls (importlib.metadata, __version__ and `fusco --version` agree).
$(STAMP): setup.cfg pyproject.toml fusco_actor/_version.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $(STAMP)

# The documentation's tools (the `docs` extra): `make docs` and tests/docs need them.
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

# System packages for the tests, from Debian: nginx with its echo module and
# tinyproxy (tests/integration/test_interop.py), and chromium, the headless
# browser that draws the `fusco bench --html` page
# (tests/integration/test_bench_html_browser.py). Installed only when missing; as
# root, or with a password-less sudo; otherwise a message (those tests then skip,
# and fail under CI=true).
SYSDEPS := nginx libnginx-mod-http-echo tinyproxy chromium

sysdeps:
	@if [ -x /usr/sbin/nginx ] && [ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] \
		&& { command -v tinyproxy || [ -x /usr/sbin/tinyproxy ]; } >/dev/null 2>&1 \
		&& [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $(SYSDEPS); \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $(SYSDEPS); \
	else \
		echo "sysdeps: cannot install $(SYSDEPS) (not root, no sudo):" \
			"run 'sudo apt-get install $(SYSDEPS)'; until then the interop and" \
			"browser tests skip (and fail when CI=true)"; \
	fi

test: $(STAMP) $(DOCS_STAMP) sysdeps
	$(PY) -m pytest

run: $(STAMP)
	$(VENV)/bin/fusco bench -z 5

# One requirement at a time: a peer that does not install is reported as such, not fatal.
bench: $(STAMP)
	@grep -v '^#' bench/requirements.txt | while read -r req; do \
		[ -z "$$req" ] || $(PY) -m pip install -q "$$req" \
			|| echo "bench: could not install $$req; its cells show as not installed"; \
	done
	$(PY) bench/run.py $(BENCH_ARGS)

# The documentation site, from docs/ and the docstrings, into docs/_build/html. A
# warning (an unresolved reference included) fails the build; -E reads every page
# again, so that a warning cannot hide in a page an earlier build had read.
docs: $(DOCS_STAMP)
	$(VENV)/bin/sphinx-build -W --keep-going -n -E -q -b html -d docs/_build/doctrees docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

# fusco bench against wrk (Debian's), wrk2 (WRK2=/path/to/wrk2, built from a checkout of
# github.com/giltene/wrk2) and Locust (FastHttpUser and FuscoUser); writes its section
# of docs/benchmarks.md.
bench-tools: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } \
		|| echo "bench-tools: wrk is not installed; its rows say so"
	$(PY) -m pip install -q -e '.[locust]' || echo "bench-tools: no Locust; its rows say so"
	$(PY) bench/load_tools.py $(if $(WRK2),--wrk2 $(WRK2)) $(TOOLS_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check fusco_actor tests examples bench
	$(VENV)/bin/ruff format --check fusco_actor tests examples bench
	$(VENV)/bin/mypy fusco_actor tests
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(VENV)/bin/pyright --pythonpath $(PY) fusco_actor

clean:
	rm -rf $(VENV) build *.egg-info docs/_build
