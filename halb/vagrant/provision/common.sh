#!/bin/sh
# Every VM: the lab hosts in /etc/hosts, sshd, python3 (the fake apiserver and console).
# halb logs in as Vagrant's own user with Vagrant's key (`vagrant ssh-config`) and becomes
# root with sudo, as on a real server reached by a non-root operator.
set -eu
name="$1"; ip="$2"; hosts="$3"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q openssh-server python3 curl ca-certificates sudo
echo "$hosts" | tr ',' '\n' | while IFS='=' read -r a n; do
  grep -q " $n\$" /etc/hosts || echo "$a $n" >> /etc/hosts
done
echo "provisioned $name ($ip)"
