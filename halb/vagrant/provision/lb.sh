#!/bin/sh
# LB hosts start as a bare server does: `halb deploy` installs haproxy and keepalived
# (apt-get, from the VM's package sources) and writes their configs.
set -eu
echo "$1: haproxy and keepalived come from halb deploy"
