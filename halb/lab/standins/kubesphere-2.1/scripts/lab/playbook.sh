#!/bin/bash
# Stands in for one of install.sh's ansible-playbook runs in the lab: prints what Ansible
# prints (PLAY, TASK, ok/fatal lines, PLAY RECAP) and exits as ansible-playbook does (0, or
# 2 when a host failed). It checks what the real stage needs from the load balancer.
#   playbook.sh 1|2|3     a stage;  playbook.sh console   the console answers (quiet)
#   playbook.sh banner    the kubesphere_running banner
ROOT=$(dirname $(dirname $(dirname $(readlink -f "$0"))))
CONF=$ROOT/conf/common.yaml
INVENTORY=$ROOT/conf/hosts.ini

section() {  # host names of an inventory section
  awk -v s="[$1]" '$0==s{on=1;next} /^\[/{on=0} on && NF && $1 !~ /^[#;]/ {print $1}' "$INVENTORY"
}
address_of() {  # ip= (else ansible_host=) of a host in [all]
  awk -v h="$1" '$1==h { for (i=2;i<=NF;i++) if ($i ~ /^ip=/) { sub(/^ip=/,"",$i); print $i; exit } }' "$INVENTORY"
}
lb_value() {  # loadbalancer_apiserver.address / .port from common.yaml
  awk -v k="$1" '/^loadbalancer_apiserver:/{on=1;next} on && /^[^ #]/{on=0}
    on && $1==k":" {gsub(/["'\'']/,"",$2); print $2; exit}' "$CONF"
}
console_node() {  # the console NodePort answers on every node: the first worker, else master
  address_of "$( (section kube-node; section kube-master) | head -n1)"
}

check() {
  # lab-offline: only stage 1's own checks (for runs outside a lab: nothing is contacted)
  [[ -f $ROOT/lab-offline && $1 != 1 ]] && return 0
  case "$1" in
    1) [[ -f os/install.tmp && -f os/precheck.done ]] ||
         { echo "os/install.tmp or os/precheck.done missing: install.sh did not run from scripts/"; return 1; }
       [[ -r $INVENTORY ]] || { echo "$INVENTORY: not readable"; return 1; } ;;
    2) vip=$(lb_value address); port=$(lb_value port)
       [[ -n $vip ]] || { echo "conf/common.yaml: loadbalancer_apiserver.address is not set"; return 1; }
       body=$(curl -sk --max-time 5 "https://$vip:${port:-6443}/readyz")
       [[ $body == ok ]] || { echo "https://$vip:${port:-6443}/readyz answered '$body'"; return 1; } ;;
    3|console) node=$(console_node)
       code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$node:30880/")
       [[ $code == 200 ]] || { echo "http://$node:30880/ answered $code"; return 1; } ;;
  esac
}

case "$1" in
  console) check console; exit ;;
  banner)
    cat << eof
#####################################################
###              Welcome to KubeSphere!           ###
#####################################################

Console: http://$(console_node):30880
Account: admin
Password: P@88w0rd

NOTES：
  1. After logging into the console, please verify the
     monitoring status of service components in
     the "Cluster Status".
#####################################################
eof
    exit 0 ;;
esac

names=("" "preinstall/init.yml" "k8s/cluster.yml" "kubesphere/kubesphere.yml")
hosts=$(section kube-master)
first=$(echo "$hosts" | head -n1)
echo
echo "PLAY [${names[$1]}] *********************************************************"
echo
echo "TASK [lab : stage $1] **********************************************************"
why=$(check "$1")
rc=$?
if [[ -f $ROOT/lab-fail-stage && $(cat "$ROOT/lab-fail-stage") == "$1" ]]; then
  why="the lab was asked to fail stage $1 (lab-fail-stage)"; rc=1
fi
failed=0
for h in $hosts; do
  if [[ $rc -ne 0 && $h == "$first" ]]; then
    echo "fatal: [$h]: FAILED! => {\"changed\": false, \"msg\": \"$why\"}"
    failed=1
  else
    echo "ok: [$h]"
  fi
done
echo
echo "PLAY RECAP *********************************************************************"
for h in $hosts; do
  f=0; [[ $failed -eq 1 && $h == "$first" ]] && f=1
  printf "%-26s : ok=%-4s changed=0    unreachable=0    failed=%s    skipped=0    rescued=0    ignored=0\n" "$h" 1 "$f"
done
[[ $failed -eq 0 ]] || exit 2
