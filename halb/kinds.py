"""The kinds of value that may reach a rendered file, and their checks. Pure.

HAProxy and keepalived configs have no escaping and the scripts run as root, so a value
is refused unless it is plainly of its kind: the defence is refusing, not quoting. Each
check returns the value (canonical where that matters) or raises ValueError with a
message that names the rule; callers add the file and key or host.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import re
from collections.abc import Collection, Iterable
from typing import Any

CLIP = 60  # characters of a user's value quoted in a message

# RFC 1123 labels, plus "_" where Ansible allows it (inventory names, group names).
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
HOST_NAME_MAX = 253
_GROUP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
# HAProxy proxy names: letters, digits, '-', '_', '.', ':' (we leave out ':').
_PROXY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}", re.ASCII)
RESERVED_PROXIES = frozenset({"stats", "prometheus"})  # halb's own sections in haproxy.cfg
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", re.ASCII)
# The kernel takes 1-15 bytes without '/', ':' or whitespace; keepalived's parser also
# ends a word at '#', '!', quotes and braces, so only the plain characters pass.
_INTERFACE = re.compile(r"[A-Za-z0-9_.@+-]{1,15}", re.ASCII)
# Names that pass the rule but name no interface a VIP can live on.
_RESERVED_INTERFACES = {
    "all": "it names every interface in /proc/sys/net (no interface can be called that)",
    "default": "it names the defaults in /proc/sys/net (no interface can be called that)",
    "lo": "the loopback interface sends no VRRP adverts to peers",
}
# HAProxy time: a number and an optional unit; the default unit is ms.
_DURATION = re.compile(r"([0-9]{1,9})(us|ms|s|m|h|d)?", re.ASCII)
_UNIT_MS = {"us": 0.001, "ms": 1, "": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DURATION_MAX_MS = 86_400_000  # a day; HAProxy's timers overflow near 24.8 days
# keepalived PASS auth: printable ASCII that its parser keeps as one word.
# ('$' starts a keepalived variable, '#' and '!' a comment, quotes and braces end a word.)
_PASSWORD = re.compile(r"[A-Za-z0-9@%+=,._:/^*()<>?-]+", re.ASCII)


# Keys whose values may be secrets, by what they hold: Ansible's ansible_ssh_pass,
# ansible_become_password, vault and key vars, halb's vrrp.auth, installers' tokens.
_SECRET_KEY = re.compile(r"pass|secret|token|auth|vault|cred|private|key", re.I)
# `key=value` inside quoted text (an INI word that is not where it belongs).
_SECRET_SETTING = re.compile(
    r"([\w.-]*(?:pass|secret|token|auth|vault|cred|private|key)[\w.-]*\s*=\s*)"
    r"(\"[^\"]*\"?|'[^']*'?|\S*)",
    re.I,
)
_INT_DIGITS_SHOWN = 40  # an integer longer than this is described, not printed


def secret_key(key: object) -> bool:
    """True for a key whose value may be a secret (never quoted in a message)."""
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def redact(text: str) -> str:
    """`text` with the value of every secret-looking `key=value` replaced."""
    if "=" not in text:
        return text
    return _SECRET_SETTING.sub(lambda m: m.group(1) + "<redacted>", text)


def number_text(value: int) -> str:
    """An int as text; one too long to print (Python refuses past 4300 digits) described."""
    if -(10**_INT_DIGITS_SHOWN) < value < 10**_INT_DIGITS_SHOWN:
        return str(value)
    digits = int(abs(value).bit_length() * 0.30103) + 1
    return f"<a number of about {digits} digits>"


def printable(text: str) -> str:
    """Control and format characters as escapes: one line that cannot drive a terminal."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text
    )


MAX_LINE = 600  # characters of one message line; a 1 MB value is never echoed whole


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """`text` as one printable line of at most about `limit` characters.

    Control characters (a newline or an escape sequence in a file or host name) show
    escaped, so one message stays one line and cannot drive the terminal.
    """
    cut = 0
    if len(text) > limit * 4:  # not escaping a 3 MB text to keep 600 characters of it
        cut = len(text) - limit * 4
        text = text[: limit * 2] + text[-limit * 2 :]
    shown = printable(text)
    if len(shown) <= limit:
        return shown
    # The head names the file, key or host; the tail often says why: keep both.
    head, tail = limit * 2 // 3, limit // 3
    left_out = len(shown) - head - tail + cut
    return f"{shown[:head]} ...({left_out} characters left out)... {shown[-tail:]}"


def shown(value: object, limit: int = CLIP) -> str:
    """A value as a message may quote it: repr (so one line, escaped), clipped, with the
    value of any secret-looking `key=value` in it redacted. Linear in `limit`, not in the
    value: a 3 MB string is cut before it is quoted."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        text = number_text(value)
    elif isinstance(value, str):
        text = repr(redact(value[: limit * 4]) if "=" in value[: limit * 4] else value[: limit * 4])
        if len(value) > limit * 4:
            text = text[:-1] + "…" + text[-1]
    elif isinstance(value, (list, tuple, set, frozenset, dict)):
        text = _shown_container(value, limit)
    else:
        try:
            text = printable(repr(value))
        except ValueError:  # a repr that prints a huge int
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown_container(value: Collection[Any], limit: int) -> str:
    """A list, set or mapping, built from its first items only (each one shown())."""
    if isinstance(value, dict):
        if any(secret_key(k) for k in value):
            return "{<holds a secret>}"
        pairs: list[tuple[Any, Any]] = _first(value.items(), limit)
        return "{" + ", ".join(f"{shown(k, limit)}: {shown(v, limit)}" for k, v in pairs) + "}"
    items = [shown(v, limit) for v in _first(value, limit)]
    brackets = {list: "[]", tuple: "()"}.get(type(value), "{}")
    return brackets[0] + ", ".join(items) + brackets[1]


def _first(items: Iterable[Any], limit: int) -> list[Any]:
    """As many items as could show in `limit` characters (a 1 000 000-item list is not
    walked to quote 60 characters of it)."""
    return list(itertools.islice(items, limit // 3 + 1))


def clip(value: object, limit: int = CLIP) -> str:
    """Like shown(), without quotes when the value is plain one-line text."""
    if isinstance(value, str) and value.isprintable() and len(value) <= limit and "=" not in value:
        return value
    return shown(value, limit)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    return value


def host_name(value: object) -> str:
    """An inventory host name: RFC 1123 labels with '_', or an IP address."""
    s = _text(value, "a host name")
    if len(s) <= HOST_NAME_MAX and _HOST_NAME.fullmatch(s):
        return s
    try:
        address(s)
    except ValueError:
        pass
    else:
        return s
    raise ValueError(
        f"host name {shown(s)} is not valid: letters, digits, '-' and '_' in dot-separated "
        f"labels of at most 63, {HOST_NAME_MAX} characters in all (or an IP address)"
    )


def group_name(value: object) -> str:
    s = _text(value, "a group name")
    if _GROUP_NAME.fullmatch(s):
        return s
    raise ValueError(
        f"group name {shown(s)} is not valid: letters, digits, '_', '-' and '.', "
        "at most 128 characters"
    )


def proxy_name(value: object) -> str:
    """A frontend name: it becomes HAProxy's frontend and backend name."""
    s = _text(value, "a frontend name")
    if not _PROXY_NAME.fullmatch(s):
        raise ValueError(
            f"frontend name {shown(s)} is not valid: a letter or digit, then letters, "
            "digits, '_', '-' or '.', at most 32 characters"
        )
    if s in RESERVED_PROXIES:
        raise ValueError(f"frontend name {s!r} is taken by halb's own {s} section")
    return s


def cluster_name(value: object) -> str:
    s = _text(value, "the cluster name")
    if not _CLUSTER_NAME.fullmatch(s):
        raise ValueError(
            f"cluster name {shown(s)} is not valid: a letter or digit, then letters, "
            "digits, '_', '-' or '.', at most 63 characters"
        )
    return s


def dns_name(value: object) -> str:
    s = _text(value, "a domain name")
    if len(s) <= HOST_NAME_MAX and _HOST_NAME.fullmatch(s):
        return s
    raise ValueError(f"{shown(s)} is not a DNS name (letters, digits, '-', '_' and dots)")


def interface(value: object) -> str:
    s = _text(value, "an interface name")
    if s in _RESERVED_INTERFACES:
        raise ValueError(f"interface {s!r} cannot carry a VIP: {_RESERVED_INTERFACES[s]}")
    if _INTERFACE.fullmatch(s) and s not in (".", ".."):
        return s
    raise ValueError(
        f"interface {shown(s)} is not a valid name: 1-15 letters, digits or '_.-@+' "
        "(the kernel allows 15 bytes, no '/', ':' or spaces)"
    )


_ADDRESS_MAX = 100  # an IPv6 address with a zone id; ipaddress quotes the whole input


def _address_text(value: object) -> str:
    s = _text(value, "an address")
    if len(s) > _ADDRESS_MAX:  # ipaddress would repr() a 3 MB value into its message
        raise ValueError(f"{shown(s)} is not an IP address (longer than any address)")
    return s


def address(value: object) -> str:
    """An IPv4 or IPv6 address, canonical; never a network, a list or a scoped address."""
    s = _address_text(value)
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        raise ValueError(f"{shown(s)} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        raise ValueError(f"{shown(s)}: scoped IPv6 addresses are not supported")
    return str(ip)


def ipv4(value: object) -> str:
    s = _address_text(value)
    try:
        return str(ipaddress.IPv4Address(s))
    except ValueError:
        raise ValueError(f"{shown(s)} is not an IPv4 address") from None


def vip_address(value: object) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A VIP: a unicast IPv4 address a host can hold, or a global or unique-local IPv6 one
    (ipv6_vip has the IPv6 rules)."""
    if not isinstance(value, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise ValueError(f"must be an IPv6 or IPv4 address as a string, not {type(value).__name__}")
    if isinstance(value, ipaddress.IPv6Address) or (isinstance(value, str) and ":" in value):
        return ipv6_vip(value)
    try:
        ip = ipaddress.IPv4Address(_address_text(value) if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"{shown(value)} is not an IPv4 address") from None
    if ip.is_unspecified or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ValueError(f"{ip} cannot be a VIP")
    if ip.is_multicast or ip.is_loopback:
        raise ValueError(f"{ip} is a {'multicast' if ip.is_multicast else 'loopback'} address")
    return ip


# RFC 2526: in a subnet of 64-bit interface ids the highest 128 are reserved anycast ids
_ANYCAST_IID_FIRST = 0xFDFF_FFFF_FFFF_FF80
_ANYCAST_IID_LAST = 0xFDFF_FFFF_FFFF_FFFF
_IID_MASK = (1 << 64) - 1


def _ipv6_text(value: object, what: str) -> ipaddress.IPv6Address:
    """An IPv6 address written plainly: no brackets, port, zone id or prefix length."""
    s = str(value) if isinstance(value, ipaddress.IPv6Address) else _address_text(value)
    if s.startswith("["):
        port = " or a port" if re.search(r"\]:[0-9]*$", s) else ""
        raise ValueError(
            f"{shown(s)}: write {what} without brackets{port} here (brackets belong in a URL; "
            "halb adds them where a file needs them)"
        )
    if re.fullmatch(r"[0-9.]+:[0-9]*", s):  # an IPv4 address with a port, not IPv6
        raise ValueError(f"{shown(s)}: write {what} without a port here")
    if "%" in s:
        raise ValueError(
            f"{shown(s)}: zone ids are not supported; {what} must be a global or "
            "unique-local IPv6 address, which needs no zone"
        )
    if "/" in s:
        raise ValueError(f"{shown(s)}: {what} is one address, without a prefix length")
    try:
        return ipaddress.IPv6Address(s)
    except ValueError:
        raise ValueError(f"{shown(s)} is not an IPv6 address") from None


def _ipv6_unicast(ip: ipaddress.IPv6Address, what: str) -> ipaddress.IPv6Address:
    """The refusals every IPv6 address halb renders shares (VIPs, LB hosts, backends)."""
    if ip.ipv4_mapped is not None:
        raise ValueError(f"{ip} is an IPv4-mapped address: give {what} as {ip.ipv4_mapped}")
    if ip.is_unspecified or ip.is_loopback:
        kind = "the unspecified" if ip.is_unspecified else "the loopback"
        raise ValueError(f"{ip} is {kind} address and cannot be {what}")
    if ip.is_multicast:
        raise ValueError(f"{ip} is a multicast address")
    if ip.is_link_local:
        raise ValueError(
            f"{ip} is link-local: it needs a zone id and means nothing off its link; "
            f"{what} must be a global or unique-local (fd00::/8) address"
        )
    if ip.is_site_local:
        raise ValueError(f"{ip} is site-local (fec0::/10, deprecated by RFC 3879)")
    if ip.is_reserved:
        raise ValueError(f"{ip} is in a reserved IPv6 range (not global or unique-local)")
    return ip


def ipv6_vip(value: object) -> ipaddress.IPv6Address:
    """An IPv6 VIP: global or unique-local unicast, written plainly. Refused: zone ids,
    brackets and ports, prefix lengths, IPv4-mapped, multicast, link-local (a VIP must be
    reachable off-link, and keepalived's VRRPv3 uses the interface's own link-local
    address as the advert source), loopback, reserved ranges, and the subnet-router
    anycast (interface id 0) and RFC 2526 reserved anycast ids of a /64."""
    ip = _ipv6_unicast(_ipv6_text(value, "a VIP"), "a VIP")
    iid = int(ip) & _IID_MASK
    if iid == 0:
        raise ValueError(
            f"{ip} is the subnet-router anycast address of its /64 (interface id 0) and "
            "cannot be a VIP"
        )
    if _ANYCAST_IID_FIRST <= iid <= _ANYCAST_IID_LAST:
        raise ValueError(f"{ip} is a reserved subnet anycast address of its /64 (RFC 2526)")
    return ip


def host_ip(value: object) -> str:
    """An LB host's or a backend's address, canonical: IPv4, or an IPv6 address by the
    rules of every IPv6 value (no zone, brackets, port, mapped, multicast or link-local)."""
    s = _address_text(value)
    if ":" not in s and "[" not in s and "%" not in s:
        return address(s)
    return str(_ipv6_unicast(_ipv6_text(s, "a host's address"), "a host's address"))


def family(value: str) -> int:
    """4 or 6: the family of an address already checked."""
    return ipaddress.ip_address(value).version


def hostport(value: str, port: int) -> str:
    """address:port as HAProxy and URLs write it: IPv6 in brackets."""
    return f"[{value}]:{port}" if ":" in value else f"{value}:{port}"


def duration_ms(value: object) -> float:
    """An HAProxy duration ("2s", "500ms", "1500"), in milliseconds, above 0 and <= a day."""
    s = _text(value, "a duration")
    m = _DURATION.fullmatch(s)
    if not m:
        raise ValueError(
            f"{shown(s)} is not an HAProxy duration: a number with an optional unit "
            "us, ms, s, m, h or d (e.g. 2s, 500ms)"
        )
    ms = int(m.group(1)) * _UNIT_MS[m.group(2) or ""]
    if not 0 < ms <= DURATION_MAX_MS:
        raise ValueError(f"{s} is out of range: more than 0 and at most 1d")
    return ms


def finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number (got {value})")
    return value


def vrrp_password(value: str) -> str:
    if not value:
        raise ValueError("empty password")
    if not _PASSWORD.fullmatch(value):
        # never quote a secret
        raise ValueError(
            "use letters, digits and simple punctuation only (no spaces, quotes, #, !, "
            "backslash, braces or control characters)"
        )
    return value
