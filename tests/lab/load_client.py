"""Load for reload tests: HTTPS /readyz on the internal VIP and HTTP / on the external VIP,
4 threads of new connections until the stop file appears (60 s at most); prints
{"ok": N, "failed": [...], "failed_at": [monotonic seconds of each failure]}. Copied
into the lab dir and run in the taskbox."""

import http.client
import json
import ssl
import sys
import threading
import time
from pathlib import Path

vip_int, vip_ext, stop = sys.argv[1], sys.argv[2], Path(sys.argv[3])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ok, failed, failed_at, lock = [0], [], [], threading.Lock()


def one(i):
    if i % 2:
        c = http.client.HTTPSConnection(vip_int, 6443, timeout=3, context=ctx)
        path = "/readyz"
    else:
        c = http.client.HTTPConnection(vip_ext, 30880, timeout=3)
        path = "/"
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        good = r.status == 200
        err = f"status {r.status}"
    except Exception as e:
        good, err = False, repr(e)
    finally:
        c.close()
    with lock:
        if good:
            ok[0] += 1
        else:
            failed.append(err)
            failed_at.append(time.monotonic())


def loop(k):
    i = k
    deadline = time.monotonic() + 60
    while not stop.exists() and time.monotonic() < deadline:
        one(i)
        i += 1


threads = [threading.Thread(target=loop, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"ok": ok[0], "failed": failed, "failed_at": failed_at}))
