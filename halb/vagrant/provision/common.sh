#!/bin/sh
# Every VM: the lab hosts in /etc/hosts, sshd, python3 (the fake apiserver and console).
# halb logs in as Vagrant's own user with Vagrant's key (`vagrant ssh-config`) and becomes
# root with sudo, as on a real server reached by a non-root operator.
# $4, when given, is the only package repository the VM uses (a lab without internet).
set -eu
name="$1"; ip="$2"; hosts="$3"; repo="${4:-}"
export DEBIAN_FRONTEND=noninteractive
if [ -n "$repo" ]; then
  rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
  echo "deb [trusted=yes] $repo ./" > /etc/apt/sources.list.d/halb-lab.list
fi
missing=""
for p in openssh-server python3 curl ca-certificates sudo openssl; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing="$missing $p"
done
apt-get update -q
# shellcheck disable=SC2086 # a list of package names
[ -z "$missing" ] || apt-get install -y -q $missing
echo "$hosts" | tr ',' '\n' | while IFS='=' read -r a n; do
  grep -q " $n\$" /etc/hosts || echo "$a $n" >> /etc/hosts
done
echo "provisioned $name ($ip)"
