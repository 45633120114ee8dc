# Two entry points do all the set-up on a fresh Debian machine (as root):
#   make demo   installs what it needs, brings up the lab and runs halb's main job on it
#   make test   installs what it needs and runs every test (lint, types, unit, golden, lab)
# The VM lab's test (real VMs, vm-debs) is part of `make test`, beside the rest
# (scripts/run-tests); alone (as root; installs its packages):
#   make test-vm
# Two need only the virtual environment (any user, no Debian packages, no root):
#   make unit   the tests not marked `lab`
#   make lint   ruff and mypy
# halb and the test tools go into a virtual environment ($(VENV)) made with the first
# $(PYTHON) on PATH: Debian's own python3 refuses `pip install` outside one (PEP 668).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
# ruby: the tests check vagrant/Vagrantfile with `ruby -c` and evaluate its settings.
# systemd and dpkg-dev: `halb lab up --init systemd` boots systemd inside private lab roots
# (never on this machine's root) and indexes the .deb files it serves to them; filling
# its cache (/var/cache/halb-lab/debs) once needs the Debian mirror (`apt-get download`).
DEBS := python3-venv haproxy keepalived openssh-server openssh-client sshpass sudo iproute2 iptables nftables socat curl openssl procps util-linux ruby systemd dpkg-dev
# The VM lab (`halb lab up --provider vagrant`): Vagrant with its libvirt provider, libvirtd
# and QEMU (run only inside the lab's own namespaces), mmdebstrap and e2fsprogs to build
# the lab's Debian box from the mirror apt uses. `make test`, `make test-vm` and
# `make vm-debs` install them; `make demo` does not.
VM_DEBS := vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base mmdebstrap e2fsprogs
LAB_DIR ?= lab
# A fresh cloud server runs its daily apt job right after boot: apt-get waits up to
# APT_LOCK_WAIT seconds for apt's locks instead of failing at once (Error 100).
export APT_LOCK_WAIT ?= 600
APT_GET := $(CURDIR)/scripts/apt-get-wait

# Resolved before PATH changes below, so a stale $(VENV) never makes itself.
PYTHON_BIN := $(shell command -v $(PYTHON))
VENV_BIN := $(abspath $(VENV))/bin
# Every recipe (and the lab hosts it starts, which run `halb` through PATH) uses the venv.
export PATH := $(VENV_BIN):$(PATH)

.PHONY: deps debs vm-debs venv test test-vm lint unit demo demo-down bench clean

# The base list (`make demo`); `make test` adds the VM lab's (vm-debs).
debs:
	@$(call install_debs,$(DEBS))

# `make test`, `make test-vm` and the VM lab's instructions (vagrant/README.md). With a
# policy-rc.d that refuses service starts when the machine has none, so libvirtd never
# starts in this machine's own namespaces; halb starts it in the lab's.
vm-debs:
	@$(call install_debs,$(VM_DEBS),$(CURDIR)/scripts/without-service-starts)

# $(1) the packages, $(2) what the install runs under (nothing, or a wrapper).
define install_debs
missing=""; for p in $(1); do dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages:$$missing"; \
  $(APT_GET) update -qq && $(2) $(APT_GET) install -y -qq --no-install-recommends $$missing >/dev/null; \
fi
endef

# Needs no Debian package beyond a Python with venv (make deps, as root, installs
# python3-venv first on a fresh Debian machine).
$(VENV_BIN)/python:
	@test -n "$(PYTHON_BIN)" || { echo "no $(PYTHON) on PATH (set PYTHON=...)"; exit 2; }
	$(PYTHON_BIN) -m venv $(VENV) || { rm -rf $(VENV); echo "$(PYTHON) -m venv failed (on Debian: apt-get install python3-venv, or make deps as root)"; exit 2; }

# Reinstalled when the dependencies change; halb itself is an editable install.
$(VENV)/.installed: pyproject.toml | $(VENV_BIN)/python
	$(VENV_BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

# debs first: on a fresh Debian machine the venv needs python3-venv
deps: debs
	@$(MAKE) --no-print-directory venv

lint: venv
	ruff check halb tests bench
	ruff format --check halb tests bench
	mypy

unit: venv
	python -m pytest -q -m 'not lab'

# Every test; the VM lab's (real VMs under QEMU's TCG, niced) in the background beside
# the rest, which mostly waits on timers (scripts/run-tests).
test: deps vm-debs
	@$(MAKE) --no-print-directory lint
	scripts/run-tests

# The VM lab end to end alone (tests/lab/test_vagrant_vms.py).
test-vm: deps vm-debs
	HALB_VM_TEST=1 python -m pytest -q -p no:cacheprovider -s tests/lab/test_vagrant_vms.py

demo: deps
	@halb lab down --dir $(LAB_DIR) >/dev/null 2>&1 || true
	halb lab up --dir $(LAB_DIR)
	halb lab exec -- halb up -c $(LAB_DIR)/halb.yaml
	halb lab exec -- halb status -c $(LAB_DIR)/halb.yaml
	halb lab exec -- halb probe -c $(LAB_DIR)/halb.yaml
	@echo
	@echo "The lab is still up. Look around:"
	@echo "  $(VENV)/bin/halb lab status"
	@echo "  $(VENV)/bin/halb lab exec -- curl -s http://$$(python -c "import yaml; print(yaml.safe_load(open('$(LAB_DIR)/halb.yaml'))['vips']['external']['address'])"):30880/"
	@echo "Remove it with: make demo-down"
	@echo "(halb lives in $(VENV); \`. $(VENV)/bin/activate\` puts it on your PATH)"

demo-down: deps
	halb lab down --dir $(LAB_DIR)

# Every benchmark on fresh labs. probe, inventory, data plane, deploy and drill rewrite
# their own section of bench/README.md (the drill also its summary in README.md),
# write_config its bench/write_config.md; failback and soak print their tables.
# Long (about two hours on 2 cores); each stops by itself and takes its labs down.
bench: deps
	@dpkg -s wrk >/dev/null 2>&1 || { $(APT_GET) update -qq && $(APT_GET) install -y -qq --no-install-recommends wrk >/dev/null; }
	python bench/probe_bench.py
	python bench/inventory_bench.py
	python bench/write_config_bench.py
	python bench/dataplane_bench.py
	python bench/deploy_bench.py --ansible-sizes 2
	python bench/drill_bench.py
	python bench/failback.py
	python bench/soak.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache rendered
