"""The drain flag on an LB host, named once.

The rendered check script tests for a file called `drained` in its own folder (the
root-only script dir), so the path below and the script cannot disagree.
"""

from __future__ import annotations

from halb.paths import DRAIN_FLAG as DRAIN_FLAG

# The flag holds the time it was set (for people reading the host). Written under a
# private umask and renamed into place, so a half-written flag never exists.
SET_FLAG = 'umask 077 && date -u +%Y-%m-%dT%H:%M:%SZ > "$1.tmp" && mv -f "$1.tmp" "$1"'
CLEAR_FLAG = 'rm -f "$1"'
