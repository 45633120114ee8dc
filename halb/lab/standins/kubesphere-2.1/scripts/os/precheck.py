"""The lab's os/precheck.py: run from scripts/, as install.sh expects (relative paths)."""

import pathlib
import sys

conf = pathlib.Path("../conf/common.yaml")
if not conf.is_file():
    sys.exit("precheck: ../conf/common.yaml not found (run install.sh from scripts/)")
if "loadbalancer_apiserver:" not in conf.read_text():
    print("precheck: no loadbalancer_apiserver in conf/common.yaml: a single-master endpoint")
pathlib.Path("os/precheck.done").write_text("precheck ran\n")
print("precheck: ok")
