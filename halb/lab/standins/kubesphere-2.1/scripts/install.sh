#!/bin/bash
# The lab's KubeSphere 2.1 installer: scripts/install.sh as ks-installer v2.1 ships it, with
# each ansible-playbook run replaced by lab/playbook.sh (which checks, through the VIP,
# what the real playbook would need). Kept as the original behaves, on purpose:
# - not root: a message and `exit 0`; an unknown argument: "failed!,..." and `exit`;
# - no argument: `clear`, the menu, and `read -p "Please input an option: "` in a loop;
# - `read -p` yes/no loop on the prerequisites until exactly yes or no;
# - os/install.tmp and os/precheck.py relative to the working directory (scripts/);
# - a failed stage prints "failed!" and ends with a bare `exit` (status 0);
# - result_notes waits (1200 s) for KubeSphere to run, then prints the Welcome banner.
# Lab knobs, files in the installer folder: lab-fail-stage (a stage number to fail),
# lab-extra-prompt (one more question, which no fact covers), lab-ks-wait (seconds
# result_notes waits), lab-no-banner (KubeSphere never reports running), lab-offline
# (stages 2 and 3 contact nothing: for runs outside a lab).

BASE_FOLDER=$(dirname $(readlink -f "$0"))

usage() {
  echo "Usage:"
  echo "  ./install.sh [MODE] "
  exit -1
}

while getopts h option
do
  case "${option}" in
  h) usage ;;
  *) usage ;;
  esac
done

function menu() {
clear
cat << eof
################################################
         KubeSphere Installer Menu
################################################
*   1) All-in-one
*   2) Multi-node
*   3) Quit
################################################
https://kubesphere.io/               `date +%Y-%m-%d`
################################################
eof
}

function storage_sure(){
    clear
    cat << eof

Prerequisites:

1. It's recommended that Your OS is clean (without any other software installed), otherwise there may be conflicts.

2. OS requirements: 4 Core or faster processor, 8GB or more of RAM.

3. Please make sure the storage service is available if you've configured storage parameters in the conf directory .

eof

    read -p "Please ensure that your environment has met the above requirements  (yes/no) " ans
    while [[ "x"$ans != "xyes" && "x"$ans != "xno" ]]; do
        read -p "Please ensure that your environment has met the above requirements  (yes/no) " ans
    done

    if [[ "x"$ans == "xno" ]]; then
        echo "Please reprepare the machines meeting the above requirements, then restart the installation !"
        exit
    fi
}

function base_check(){
    if [[ `whoami` != 'root' ]]; then
      notice_user="Please install KubeSphere using the root user !"
      echo -e "\033[1;36m$notice_user\033[0m"
      exit 0
    fi
}

function ks_running(){
    [[ -f $BASE_FOLDER/../lab-no-banner ]] && return 1
    "$BASE_FOLDER/lab/playbook.sh" console > /dev/null 2>&1
}

function result_notes(){
    timeout=0
    limit=1200
    [[ -f $BASE_FOLDER/../lab-ks-wait ]] && limit=$(cat "$BASE_FOLDER/../lab-ks-wait")
    info='The ks-installer is running'
    while [ $timeout -le $limit ]
    do
      clear
      echo -e "\033[1;36m$info\033[0m"
      if ks_running; then
         "$BASE_FOLDER/lab/playbook.sh" banner
         break
      else
         i=0
         b=''
         while [ $i -le 10 ]
         do
          printf "Please wait for the installation to complete %s\r" $b;
          sleep 1
          ((timeout=timeout+1))
          ((i=i+2))
          b+='.'
         done
      fi
    done
    echo
}

function failed_prompt(){
  str="failed!"
  echo -e "\033[31;47m$str\033[0m"
  echo "**********************************"
  echo "please refer to https://kubesphere.io/docs/v2.1/zh-CN/faq/faq-install/"
  echo "**********************************"
  exit
}

function init_env(){
  $BASE_FOLDER/os/os_check.sh
  if [[ $? -eq 0 ]]; then
    echo "init_env successful" > os/install.tmp
  fi
}

LOG_FOLDER=$BASE_FOLDER/../logs
if [ ! -d $LOG_FOLDER ];then
   mkdir -p $LOG_FOLDER
fi

function stage(){
  echo "*********************************************"
  echo "$1"
  echo "*********************************************"
}

function multi-node(){

  storage_sure

  if [[ -f $BASE_FOLDER/../lab-extra-prompt ]]; then
    read -p "Please enter the password of your private registry: " registry_password
  fi

  if [[ -f os/install.tmp ]]; then
    grep  "init_env successful" os/install.tmp > /dev/null
    if [[ $? -ne '0' ]]; then
          init_env
    fi
  else
          init_env
  fi

  # The original runs `python os/precheck.py` (Python 2 on CentOS 7); the lab's hosts
  # have python3 only.
  python3 os/precheck.py

  stage "1. Initiating Environment"
  "$BASE_FOLDER/lab/playbook.sh" 1
  if [[ $? -eq 0 ]]; then
    str="successsful!"
    echo -e "\033[30;47m$str\033[0m"
  else
    failed_prompt
  fi

  stage "2. Installing Kubernetes"
  "$BASE_FOLDER/lab/playbook.sh" 2
  if [[ $? -eq 0 ]]; then
    str="successsful!"
    echo -e "\033[30;47m$str\033[0m"
  else
    failed_prompt
  fi

  stage "3. Installing KubeSphere"
  "$BASE_FOLDER/lab/playbook.sh" 3
  if [[ $? -eq 0 ]]; then
    str="successsful!"
    echo -e "\033[30;47m$str\033[0m"
    result_notes
  else
    failed_prompt
  fi
}

base_check

if [[ 1 -le $# ]]; then
  if [[ "all-in-one" = $1 ]]; then
    str="failed!,the lab installs multi-node only"
    echo -e "\033[31;47m$str\033[0m"
    exit
  elif [[ "multi-node" = $1 ]]; then
    multi-node
    exit
  else
    str="failed!,Parameter is wrong , Please check parameter is one or all"
    echo -e "\033[31;47m$str\033[0m"
    exit
  fi
else
  menu
  while true
  do
      read -p "Please input an option: " option
      echo $option
      case $option in
         1)
              str="failed!,the lab installs multi-node only"
              echo -e "\033[31;47m$str\033[0m"
              exit
                 ;;
         2)
              multi-node
              exit
                 ;;
         3)
              echo -e "\033[30;47mquit successsful!!\033[0m"
              break
                 ;;
      esac
  done
fi
