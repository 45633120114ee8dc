#!/bin/sh
# Masters: the lab's fake kube-apiserver (TLS, /readyz /livez /healthz) on 6443; node.sh,
# run before this, installed the stand-in and its console on 30880.
# `echo 500 > /run/halb-lab/readyz` makes it "not ready"; remove the file to recover.
set -eu
name="$1"; ip="$2"
install -d -m 755 /run/halb-lab /var/lib/halb-lab
if [ ! -f /var/lib/halb-lab/apiserver.crt ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=$name" -addext "subjectAltName=IP:$ip,DNS:$name,DNS:lb.kubesphere.local" \
    -keyout /var/lib/halb-lab/apiserver.key -out /var/lib/halb-lab/apiserver.crt
fi
cat > /etc/systemd/system/halb-fake-apiserver.service <<UNIT
[Unit]
Description=halb lab fake kube-apiserver
After=network-online.target

[Service]
RuntimeDirectory=halb-lab
RuntimeDirectoryPreserve=yes
ExecStart=/usr/bin/python3 /usr/local/lib/halb-lab/fakeapi.py --name $name --apiserver $ip:6443 --cert /var/lib/halb-lab/apiserver.crt --key /var/lib/halb-lab/apiserver.key
Restart=always

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now halb-fake-apiserver
