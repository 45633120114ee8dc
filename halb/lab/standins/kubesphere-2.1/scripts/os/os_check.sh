#!/bin/bash
# The lab's os/os_check.sh: the real one checks the distribution and installs packages.
grep -q '^ID=' /etc/os-release && echo "os check: $(. /etc/os-release; echo "$PRETTY_NAME")"
