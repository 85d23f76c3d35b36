"""The fetch policy as a pure function over hosts and addresses (no lookup, no packet)."""

from __future__ import annotations

import pickle

import pytest

from gswarm_jupyter.core.fetchpolicy import FetchPolicy, parse_literal

DEFAULT = FetchPolicy()
LOOPBACK_ONLY = FetchPolicy(["127.0.0.0/8", "::1/128"], ["0.0.0.0/0", "::/0"])
EVERYTHING = FetchPolicy(["0.0.0.0/0", "::/0", "169.254.0.0/16", "fd00::/8", "100.64.0.0/10",
                          "metadata", "metadata.google.internal"])

METADATA = [
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200",
    "[fd00:ec2::254]", "FD00:EC2:0:0:0:0:0:254",
    "2852039166", "0251.0376.0251.0376", "0xa9fea9fe", "0xA9.0xFE.0xA9.0xFE", "169.254.43518",
    "0251.0xfe.43518", "::ffff:169.254.169.254", "::ffff:a9fe:a9fe", "::169.254.169.254",
    "2002:a9fe:a9fe::1", "64:ff9b::169.254.169.254", "64:ff9b:1::a9fe:a9fe",
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254 (obfuscated)
    "169.254.169.254.", "metadata", "METADATA.google.internal.", "metadata.google.internal",
]


def no_lookup(host: str) -> list[str]:
    raise AssertionError(f"{host} was looked up")


def resolver(answers: dict[str, list[str]], asked: list[str]):
    def resolve(host: str) -> list[str]:
        asked.append(host)
        return answers[host]

    return resolve


@pytest.mark.parametrize("host", METADATA)
@pytest.mark.parametrize("policy", [DEFAULT, LOOPBACK_ONLY, EVERYTHING], ids=["default", "loopback", "everything"])
def test_metadata_is_always_denied_in_every_encoding(policy, host):
    decision, addresses = policy.admit(host, no_lookup)
    assert not decision.allowed and addresses == ()
    assert "metadata" in decision.reason


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.1.1", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.1", "private"),
    ("fc00::1", "private"), ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("fec0::1", "site-local"),
    ("240.0.0.1", "reserved"), ("100.64.0.1", "non-global"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.1.2.3", "private"),
    ("2002:7f00:1::", "loopback"), ("2002:c0a8:101::", "private"), ("64:ff9b::10.0.0.1", "reserved"),
    ("2130706433", "loopback"), ("0177.0.0.1", "loopback"), ("0x7f000001", "loopback"),
    ("127.1", "loopback"), ("10.1", "private"),
])
def test_the_default_denies_addresses_that_are_not_public(address, kind):
    decision = DEFAULT.decide_host(address)
    assert not decision.allowed and not decision.resolve
    assert kind in decision.reason
    assert DEFAULT.decide_address(address).allowed is False


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111",
                                     "::ffff:8.8.8.8", "134744072"])
def test_the_default_allows_global_addresses(address):
    assert DEFAULT.decide_address(address).allowed
    decision, addresses = DEFAULT.admit(address, no_lookup)
    assert decision.allowed and [str(a) for a in addresses] == [str(parse_literal(address))]


def test_loopback_only_allows_loopback_and_denies_every_other_address():
    for address in ("127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1", "0x7f.1"):
        assert LOOPBACK_ONLY.decide_host(address).allowed, address
    for address in ("8.8.8.8", "10.0.0.1", "2606:4700::1111", "192.168.0.1", "0.0.0.0"):
        decision = LOOPBACK_ONLY.decide_host(address)
        assert not decision.allowed and "fetch_deny" in decision.reason, address


def test_allow_comes_before_deny_and_deny_before_the_default():
    policy = FetchPolicy(allow=["10.1.0.0/16", "192.168.7.7"], deny=["10.0.0.0/8", "8.8.8.0/24"])
    assert policy.decide_address("10.1.2.3").allowed  # allowed, though denied and private
    assert policy.decide_address("192.168.7.7").allowed  # a single address entry
    assert not policy.decide_address("192.168.7.8").allowed  # the default still applies
    assert "fetch_deny" in policy.decide_address("10.2.0.1").reason
    assert not policy.decide_address("8.8.8.8").allowed  # denied, though global
    assert policy.decide_address("8.8.4.4").allowed


def test_a_catch_all_deny_refuses_host_names_without_looking_them_up():
    for policy in (LOOPBACK_ONLY, FetchPolicy(deny=["*"]), FetchPolicy(deny=["::/0"])):
        for host in ("example.com", "localhost", "made-up.invalid", "0x", "08"):
            decision, addresses = policy.admit(host, no_lookup)
            assert not decision.allowed and addresses == ()
            assert "without resolving" in decision.reason


def test_listed_host_names_decide_before_their_addresses():
    asked: list[str] = []
    policy = FetchPolicy(allow=["files.internal"], deny=["0.0.0.0/0", "::/0", "blocked.example"])
    resolve = resolver({"files.internal": ["10.0.0.5", "::1"]}, asked)
    decision, addresses = policy.admit("Files.Internal.", resolve)
    assert decision.allowed and [str(a) for a in addresses] == ["10.0.0.5", "::1"]
    assert asked == ["files.internal"]
    assert not FetchPolicy(deny=["blocked.example"]).admit("blocked.example", no_lookup)[0].allowed


def test_an_allowed_host_name_still_never_reaches_a_metadata_address():
    policy = FetchPolicy(allow=["evil.example"])
    resolve = resolver({"evil.example": ["8.8.8.8", "169.254.169.254"]}, [])
    decision, addresses = policy.admit("evil.example", resolve)
    assert not decision.allowed and addresses == () and "metadata" in decision.reason


def test_every_resolved_address_must_pass():
    asked: list[str] = []
    resolve = resolver({"mixed.example": ["93.184.216.34", "127.0.0.1"],
                        "public.example": ["93.184.216.34", "2606:2800::1"],
                        "empty.example": []}, asked)
    decision, addresses = DEFAULT.admit("mixed.example", resolve)
    assert not decision.allowed and addresses == () and "127.0.0.1" in decision.reason
    decision, addresses = DEFAULT.admit("public.example", resolve)
    assert decision.allowed and len(addresses) == 2
    assert not DEFAULT.admit("empty.example", resolve)[0].allowed
    assert asked == ["mixed.example", "public.example", "empty.example"]


def test_ip_literals_are_decided_without_a_lookup():
    for host in ("127.0.0.1", "[::1]", "2130706433", "0177.0.0.01", "0x7f.0.0.1"):
        decision, addresses = LOOPBACK_ONLY.admit(host, no_lookup)
        assert decision.allowed and addresses, host


@pytest.mark.parametrize("text, expected", [
    ("1.2.3.4", "1.2.3.4"), ("16909060", "1.2.3.4"), ("1.2.772", "1.2.3.4"), ("1.131844", "1.2.3.4"),
    ("01.02.03.04", "1.2.3.4"), ("0x1.0x2.0x3.0x4", "1.2.3.4"), ("0X01020304", "1.2.3.4"),
    ("::1", "::1"), ("[::1]", "::1"),
    ("1.2.3.4.5", None), ("256.1.1.1", None), ("1.2.3.256", None), ("09.1.1.1", None),
    ("0x", None), ("4294967296", None), ("example.com", None), ("", None), ("1..2", None),
])
def test_literal_parsing_follows_inet_aton(text, expected):
    parsed = parse_literal(text)
    assert (None if parsed is None else str(parsed)) == expected


@pytest.mark.parametrize("entry", ["not a host!", "10.0.0.0/33", "http://x/", "a..b"])
def test_a_bad_entry_is_refused_at_construction(entry):
    with pytest.raises(ValueError, match="fetch_allow"):
        FetchPolicy(allow=[entry])


def test_the_policy_travels_to_a_worker_intact():
    copy = pickle.loads(pickle.dumps(LOOPBACK_ONLY))
    assert copy.decide_host("127.0.0.1").allowed
    assert not copy.decide_host("example.com").allowed
