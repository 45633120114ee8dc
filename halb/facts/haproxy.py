"""HAProxy's `show stat` CSV: the shell snippet that reads it and the parser."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from halb.paths import HAPROXY_ADMIN_SOCKET, HAPROXY_STATS_CSV_URL

# Through the admin socket when socat is there, else the local stats page.
SHOW_STAT = f"""
if command -v socat >/dev/null 2>&1 && [ -S {HAPROXY_ADMIN_SOCKET} ]; then
  echo 'show stat' | socat -t 2 - UNIX-CONNECT:{HAPROXY_ADMIN_SOCKET}
elif command -v curl >/dev/null 2>&1; then
  curl -s -m 3 '{HAPROXY_STATS_CSV_URL}'
fi
"""


@dataclass(frozen=True)
class StatRow:
    pxname: str
    svname: str
    type: int  # 0 frontend, 1 backend, 2 server, 3 listener
    status: str  # UP, DOWN, "UP 1/3", "DOWN 1/2", MAINT, DRAIN, no check, OPEN ...
    check_status: str
    addr: str
    scur: int = 0  # current sessions

    @property
    def healthy(self) -> bool:
        """Taking traffic as far as HAProxy is concerned."""
        s = self.status.upper()
        return s.startswith("UP") or s == "NO CHECK"


def parse_show_stat(text: str) -> tuple[StatRow, ...]:
    """Parse HAProxy's `show stat` / `;csv` output (header line starts with '# ')."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("#"):
        return ()
    header = lines[0].lstrip("#").strip()
    reader = csv.DictReader(io.StringIO("\n".join([header, *lines[1:]])))
    rows: list[StatRow] = []
    for r in reader:
        try:
            kind = int(r.get("type") or -1)
        except ValueError:
            kind = -1
        rows.append(
            StatRow(
                pxname=r.get("pxname") or "",
                svname=r.get("svname") or "",
                type=kind,
                status=(r.get("status") or "").strip(),
                check_status=(r.get("check_status") or "").strip(),
                addr=(r.get("addr") or "").strip(),
                scur=int(r["scur"]) if (r.get("scur") or "").isdigit() else 0,
            )
        )
    return tuple(rows)
