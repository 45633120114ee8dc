#!/bin/sh
# Nodes and masters (a NodePort answers on every k8s-cluster host): the lab's fake
# KubeSphere console on 30880 ("console NAME").
set -eu
name="$1"; ip="$2"
# The stand-in, uploaded by the Vagrantfile (one file, standard library only).
install -D -m 644 /tmp/halb-fakeapi.py /usr/local/lib/halb-lab/fakeapi.py
cat > /etc/systemd/system/halb-fake-console.service <<UNIT
[Unit]
Description=halb lab fake KubeSphere console
After=network-online.target

[Service]
RuntimeDirectory=halb-lab
RuntimeDirectoryPreserve=yes
ExecStart=/usr/bin/python3 /usr/local/lib/halb-lab/fakeapi.py --name $name --console $ip:30880
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now halb-fake-console
