#!/bin/sh
# Make the VM lab's client key (once, before `vagrant up`) and print the next steps.
set -eu
cd "$(dirname "$0")"
[ -f id_ed25519 ] || ssh-keygen -q -t ed25519 -N '' -C halb-vagrant-lab -f id_ed25519
chmod 600 id_ed25519
echo "key: $(pwd)/id_ed25519; now run: vagrant up"
