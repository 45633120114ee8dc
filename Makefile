# Two entry points do all the set-up on a fresh Debian machine (as root):
#   make demo   installs what it needs, brings up the lab and runs halb's main job on it
#   make test   installs what it needs and runs every test (lint, types, unit, golden, lab)
SHELL := /bin/bash
PYTHON ?= python3
DEBS := haproxy keepalived openssh-server openssh-client sshpass sudo iproute2 iptables nftables socat curl openssl procps util-linux
LAB_DIR ?= lab

.PHONY: deps test lint unit demo demo-down clean

deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test]'

lint:
	ruff check halb tests bench
	ruff format --check halb tests bench
	mypy

unit:
	$(PYTHON) -m pytest -q -m 'not lab'

test: deps lint
	$(PYTHON) -m pytest -q -p no:cacheprovider

demo: deps
	@halb lab down --dir $(LAB_DIR) >/dev/null 2>&1 || true
	halb lab up --dir $(LAB_DIR)
	halb lab exec -- halb up -c $(LAB_DIR)/halb.yaml
	halb lab exec -- halb status -c $(LAB_DIR)/halb.yaml
	halb lab exec -- halb probe -c $(LAB_DIR)/halb.yaml
	@echo
	@echo "The lab is still up. Look around:"
	@echo "  halb lab status"
	@echo "  halb lab exec -- curl -s http://$$($(PYTHON) -c "import yaml; print(yaml.safe_load(open('$(LAB_DIR)/halb.yaml'))['vips']['external']['address'])"):30880/"
	@echo "Remove it with: make demo-down"

demo-down:
	halb lab down --dir $(LAB_DIR)

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache rendered
