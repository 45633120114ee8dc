"""Names and defaults that command signatures show (`--help`, option defaults).

They live here, with no imports, so that building the command line imports none of the
modules that use them (pydantic models, jinja2, asyncio, the YAML editors).
"""

from __future__ import annotations

# `halb up --until`: the stages in the order they run.
STAGES = ("preflight", "render", "deploy", "verify", "write-config", "install")

# `halb write-config --installer`: the installers whose config halb edits.
INSTALLER_KINDS = ("kubesphere", "kubekey", "kubespray")

PROBE_TIMEOUT = 2.0  # seconds, per probe: connect + TLS + first response line
# Sized so that a run over 500 backends (plus the VIP probes) starts every probe at once:
# a black-holed backend holds its slot for a whole timeout, so a second wave would double
# the run time. See bench/README.md.
PROBE_CONCURRENCY = 512
