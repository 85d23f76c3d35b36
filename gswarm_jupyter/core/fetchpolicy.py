"""Which hosts and addresses a server-side fetch (an `http(s)://` chunk or model source) may reach.

Invariant: a decision depends only on the policy's two lists and the host or address it is given.
Nothing here resolves a name or opens a socket; `admit` resolves only through the function passed
to it, and only when the host stage leaves the answer to the addresses.

Order (agreed; other parts rely on it):
1. the cloud metadata addresses and host names are always denied;
2. an address (or exact host name) in `fetch_allow` is allowed;
3. one in `fetch_deny` is denied;
4. by default link-local, loopback, private, unspecified, multicast, reserved, site-local and other
   non-global addresses are denied (also when embedded in IPv4-mapped, IPv4-compatible, 6to4,
   Teredo or NAT64 IPv6 forms), global addresses allowed.
When `fetch_deny` holds a catch-all (`0.0.0.0/0`, `::/0` or `*`) a host name that `fetch_allow`
does not list is refused before any lookup; IP literals (in any encoding `inet_aton` accepts:
`2852039166`, `0251.0376.0251.0376`, `0xa9fea9fe`, `169.254.43518`) are decided without a lookup.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], Iterable[str]]  # host name -> its addresses (a DNS lookup)

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTS: frozenset[str] = frozenset({"metadata.google.internal", "metadata"})
CATCH_ALL: frozenset[str] = frozenset({"0.0.0.0/0", "::/0", "*"})

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")
_NUMBER = re.compile(r"^(0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*)$")


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy answer. At the host stage `resolve` means: not decided by the name; resolve it
    and decide every address it has (`decide_resolved`)."""

    allowed: bool
    reason: str
    resolve: bool = False


@dataclass(frozen=True, slots=True)
class _Rules:
    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = field(default_factory=frozenset)
    catch_all: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str], setting: str) -> _Rules:
        """CIDR networks, single addresses or exact host names; anything else is `ValueError`."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        catch_all = False
        for raw in entries:
            entry = str(raw).strip().lower()
            if entry in CATCH_ALL:
                catch_all = True
                if entry == "*":
                    networks += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
                    continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            host = normalise_host(entry)
            if not _HOSTNAME.match(host):
                raise ValueError(f"{setting}: {raw!r} is neither a network, an address nor a host name")
            hosts.add(host)
        return cls(tuple(networks), frozenset(hosts), catch_all)

    def match(self, address: IPAddress) -> IPNetwork | None:
        return next((n for n in self.networks if address.version == n.version
                     and address in n), None)


class FetchPolicy:
    """`FetchPolicy(allow, deny)` from `GswarmApp.fetch_allow` / `fetch_deny` (picklable: it
    travels to the worker that downloads)."""

    __slots__ = ("allow", "deny")

    def __init__(self, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> None:
        self.allow = _Rules.parse(allow, "fetch_allow")
        self.deny = _Rules.parse(deny, "fetch_deny")

    def __getstate__(self) -> tuple[_Rules, _Rules]:
        return self.allow, self.deny

    def __setstate__(self, state: tuple[_Rules, _Rules]) -> None:
        self.allow, self.deny = state

    def __repr__(self) -> str:
        return f"FetchPolicy(allow={self.allow!r}, deny={self.deny!r})"

    def decide_address(self, address: str | IPAddress) -> Decision:
        """Whether a connection to `address` is allowed (the order in the module docstring)."""
        ip = _plain(address if not isinstance(address, str) else _literal_or_fail(address))
        if is_metadata(ip):
            return Decision(False, f"{ip} is a cloud metadata address (always denied)")
        forms = embedded_forms(ip)
        effective = forms[1] if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        if (net := self.allow.match(effective)) is not None:
            return Decision(True, f"{ip} is in fetch_allow ({net})")
        for form in forms:
            if (net := self.deny.match(form)) is not None:
                return Decision(False, f"{ip} is in fetch_deny ({net})")
        # A mapped address is its IPv4 address (the connection goes there); other forms are
        # denied if any address they carry is not public.
        for form in (effective,) if effective != ip else forms:
            if (kind := special_kind(form)) is not None:
                shown = str(ip) if form == ip else f"{ip} (which embeds {form})"
                article = "an" if kind[0] in "aeiou" else "a"
                return Decision(False, f"{shown} is {article} {kind} address, denied unless "
                                       "fetch_allow lists it")
        return Decision(True, f"{ip} is a global address")

    def decide_host(self, host: str) -> Decision:
        """The pre-resolution stage: IP literals decided outright, names by the lists, or left to
        their addresses (`resolve=True`). Never looks anything up."""
        name = normalise_host(host)
        if not name:
            return Decision(False, "the URL has no host")
        literal = parse_literal(name)
        if literal is not None:
            return self.decide_address(literal)
        if name in METADATA_HOSTS:
            return Decision(False, f"{name} is a cloud metadata host (always denied)")
        if name in self.allow.hosts:
            return Decision(True, f"{name} is in fetch_allow", resolve=True)
        if name in self.deny.hosts:
            return Decision(False, f"{name} is in fetch_deny")
        if self.deny.catch_all:
            return Decision(False, f"{name} is not in fetch_allow and fetch_deny denies every "
                                   "address (refused without resolving it)")
        return Decision(True, f"{name}: every address it resolves to is checked", resolve=True)

    def decide_resolved(self, host: str, address: str | IPAddress) -> Decision:
        """One address that `host` resolved to (a host listed in `fetch_allow` vouches for its
        addresses, except metadata ones)."""
        ip = _plain(address if not isinstance(address, str) else _literal_or_fail(address))
        decision = self.decide_address(ip)
        if decision.allowed or is_metadata(ip):
            return decision
        name = normalise_host(host)
        if name in self.allow.hosts:
            return Decision(True, f"{name} is in fetch_allow (resolved to {ip})")
        return Decision(False, f"{name} resolved to {decision.reason}")

    def admit(self, host: str, resolve: Resolver) -> tuple[Decision, tuple[IPAddress, ...]]:
        """The whole check of one host: its decision and the addresses to connect to (every one
        checked; none when denied). `resolve` is called only if the name leaves it open; an
        `OSError` from it propagates."""
        decision = self.decide_host(host)
        if not decision.allowed:
            return decision, ()
        if not decision.resolve:
            return decision, (_plain(parse_literal(normalise_host(host))),)  # type: ignore[arg-type]
        addresses: list[IPAddress] = []
        for text in resolve(normalise_host(host)):
            ip = _plain(_literal_or_fail(str(text)))
            verdict = self.decide_resolved(host, ip)
            if not verdict.allowed:
                return verdict, ()
            if ip not in addresses:
                addresses.append(ip)
        if not addresses:
            return Decision(False, f"{normalise_host(host)} resolved to no address"), ()
        return decision, tuple(addresses)


def normalise_host(host: str) -> str:
    """Lower case, without brackets, an IPv6 zone or one trailing dot."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    name = name.partition("%")[0]
    return name[:-1] if name.endswith(".") and not name.endswith("..") else name


def parse_literal(text: str) -> IPAddress | None:
    """`text` as an IP address when it is one in any form a resolver takes as numeric (IPv6,
    dotted quad, or `inet_aton`'s decimal, octal, hex and short forms); else None."""
    text = text.strip()
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    parts = text.lower().split(".")
    values = [_number(p) for p in parts]
    if not 1 <= len(parts) <= 4 or None in values:
        return None
    *head, last = values  # type: ignore[misc]
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = number * 256 ** (4 - len(head)) + last
    return ipaddress.IPv4Address(number)


def _number(part: str) -> int | None:
    """One part of an `inet_aton` address: decimal, octal (leading 0) or hex (0x)."""
    if not _NUMBER.match(part) or part == "0x":
        return None
    if part.startswith("0x"):
        return int(part, 16)
    return int(part, 8) if part.startswith("0") else int(part)


def embedded_forms(ip: IPAddress) -> tuple[IPAddress, ...]:
    """`ip` and every IPv4 address an IPv6 form of it carries (mapped, compatible, 6to4, Teredo,
    NAT64): each is checked, so no encoding reaches what its plain form may not."""
    if isinstance(ip, ipaddress.IPv4Address):
        return (ip,)
    forms: list[IPAddress] = [ip]
    if ip.ipv4_mapped is not None:
        forms.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        forms.append(ip.sixtofour)
    if ip.teredo is not None:
        forms += list(ip.teredo)
    low = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # IPv4-compatible ::a.b.c.d (deprecated, still routed)
        forms.append(low)
    if any(ip in net for net in _NAT64):
        forms.append(low)
    return tuple(forms)


def is_metadata(ip: IPAddress) -> bool:
    """`ip` is a cloud metadata address, in any of its forms."""
    return any(form in METADATA_ADDRESSES for form in embedded_forms(_plain(ip)))


def special_kind(ip: IPAddress) -> str | None:
    """Why `ip` is not a public destination (None for a global unicast address)."""
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("non-global", not ip.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def _plain(ip: IPAddress) -> IPAddress:
    """Without an IPv6 zone (it never changes which host an address is)."""
    return ipaddress.IPv6Address(int(ip)) if isinstance(ip, ipaddress.IPv6Address) else ip


def _literal_or_fail(text: str) -> IPAddress:
    ip = parse_literal(normalise_host(text))
    if ip is None:
        raise ValueError(f"{text!r} is not an IP address")
    return ip
