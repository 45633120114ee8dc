#!/bin/sh
# Every VM: the lab hosts in /etc/hosts, root login with the shared lab key, python3.
set -eu
name="$1"; ip="$2"; hosts="$3"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q openssh-server python3 curl ca-certificates sudo
echo "$hosts" | tr ',' '\n' | while IFS='=' read -r a n; do
  grep -q " $n\$" /etc/hosts || echo "$a $n" >> /etc/hosts
done
# The key pair lives in the synced folder (made once by `make-key.sh` on the machine
# that runs `vagrant up`); root accepts it so hosts.ini can use ansible_user=root.
if [ -f /opt/halb/vagrant/id_ed25519.pub ]; then
  install -d -m 700 /root/.ssh
  grep -qf /opt/halb/vagrant/id_ed25519.pub /root/.ssh/authorized_keys 2>/dev/null ||
    cat /opt/halb/vagrant/id_ed25519.pub >> /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
sed -i 's/^#\?PermitRootLogin.*/PermitRootLogin prohibit-password/' /etc/ssh/sshd_config
systemctl reload ssh
