"""The two daemons halb deploys, by name, and their config files (pure: the plan, the
facts and the service managers share these names)."""

from __future__ import annotations

from typing import Literal

from halb.paths import HAPROXY_CFG, KEEPALIVED_CONF

ServiceName = Literal["haproxy", "keepalived"]
SERVICES: tuple[ServiceName, ...] = ("haproxy", "keepalived")

CONFIG_OF: dict[ServiceName, str] = {"haproxy": HAPROXY_CFG, "keepalived": KEEPALIVED_CONF}
