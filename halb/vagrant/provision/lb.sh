#!/bin/sh
# LB hosts: the Debian haproxy and keepalived packages; halb renders and deploys their configs.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q haproxy keepalived
# keepalived refuses to start without a config; halb deploy writes the real one.
systemctl disable --now keepalived 2>/dev/null || true
