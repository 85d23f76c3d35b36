"""Downloads go only where the fetch policy admits, hop by hop, and stop when they outgrow their
room. Every server here listens on 127.0.0.1; other addresses appear only as redirect targets
that must be refused before any connection (the connector records every address it is asked
for, so a refused address is proven never dialled)."""

from __future__ import annotations

import pytest

from gswarm_jupyter.cluster.storage.chunkstore import download_bytes
from gswarm_jupyter.cluster.storage.httpfetch import MAX_REDIRECTS, Room, connect, open_url
from gswarm_jupyter.cluster.runtime.signals import TaskSignal
from gswarm_jupyter.cluster.storage.weightstore import WeightStore
from gswarm_jupyter.core.errors import (
    Forbidden,
    InsufficientMemory,
    NetworkError,
    PayloadTooLarge,
)
from gswarm_jupyter.core.fetchpolicy import FetchPolicy
from gswarm_jupyter.testing import LOOPBACK_ONLY

from ..http_source import Source

LOOPBACK = FetchPolicy(LOOPBACK_ONLY["fetch_allow"], LOOPBACK_ONLY["fetch_deny"])


class Dialled:
    """The real connector, recording each address it was asked for."""

    def __init__(self) -> None:
        self.addresses: list[str] = []

    def __call__(self, address, port, timeout):  # noqa: ANN001, ANN204
        self.addresses.append(str(address))
        assert address.is_loopback, f"a test dialled {address}"
        return connect(address, port, timeout)


def no_lookup(host: str) -> list[str]:
    raise AssertionError(f"{host} was looked up")


def get(url: str, policy: FetchPolicy, dialled: Dialled, **kwargs) -> bytes:  # noqa: ANN003
    with open_url(url, policy, connector=dialled, resolve=kwargs.pop("resolve", no_lookup),
                  **kwargs) as response:
        assert response.status == 200
        return response.read()


@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://[::ffff:169.254.169.254]/",
    "http://2852039166/",
    "http://10.0.0.1/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://made-up.invalid/",
    "file:///etc/passwd",
])
def test_a_redirect_to_a_denied_address_is_refused_before_connecting(location):
    dialled = Dialled()
    with Source() as src:
        src.redirects["start"] = location
        with pytest.raises(Forbidden) as caught:
            get(src.url("start"), LOOPBACK, dialled)
        assert [r["path"] for r in src.requests] == ["start"]
    assert dialled.addresses == ["127.0.0.1"]  # the allowed hop only
    assert caught.value.details["reason"]
    assert caught.value.details["url"] == location


def test_the_default_policy_refuses_loopback_before_connecting():
    dialled = Dialled()
    with Source() as src:
        src.files["x"] = b"secret"
        with pytest.raises(Forbidden, match="loopback"):
            get(src.url("x"), FetchPolicy(), dialled)
        assert src.requests == []
    assert dialled.addresses == []


def test_redirects_are_followed_each_checked_and_bounded():
    dialled = Dialled()
    with Source() as a, Source() as b:
        a.redirects["one"] = b.url("two")
        b.redirects["two"] = "/three"  # relative: the same server
        b.files["three"] = b"arrived"
        assert get(a.url("one"), LOOPBACK, dialled) == b"arrived"
        for i in range(MAX_REDIRECTS + 1):
            a.redirects[f"loop{i}"] = f"/loop{i + 1}"
        a.files[f"loop{MAX_REDIRECTS + 1}"] = b"too far"
        with pytest.raises(NetworkError, match="redirected more than"):
            get(a.url("loop0"), LOOPBACK, dialled)
        a.redirects["loop0"] = f"/loop{2}"  # one hop fewer: within the bound
        assert get(a.url("loop0"), LOOPBACK, dialled) == b"too far"


def test_a_host_name_is_resolved_once_and_the_checked_address_dialled():
    """No second lookup (DNS rebinding): the name's one answer is checked and connected to,
    while the request still names the host."""
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return next(answers)

    dialled = Dialled()
    policy = FetchPolicy(["127.0.0.0/8", "files.test"], ["0.0.0.0/0", "::/0"])
    with Source() as src:
        src.files["w"] = b"weights"
        port = src.url("w").rsplit(":", 1)[1].split("/")[0]
        assert get(f"http://files.test:{port}/w", policy, dialled, resolve=resolve) == b"weights"
        assert src.requests[-1]["host"] == f"files.test:{port}"
    assert asked == ["files.test"] and dialled.addresses == ["127.0.0.1"]


def test_userinfo_is_sent_to_its_own_origin_only():
    dialled = Dialled()
    with Source() as a, Source() as b:
        a.files["own"] = b"mine"
        a.redirects["away"] = b.url("there")
        b.files["there"] = b"theirs"
        base = a.base.replace("http://", "http://alice:s%40cret@")
        assert get(f"{base}/own", LOOPBACK, dialled) == b"mine"
        assert get(f"{base}/away", LOOPBACK, dialled) == b"theirs"
        assert a.requests[0]["authorization"] == "Basic YWxpY2U6c0BjcmV0"  # alice:s@cret
        assert a.requests[1]["authorization"] is not None
        assert b.requests[0]["authorization"] is None


def test_errors_never_show_the_userinfo():
    with Source() as src:
        url = src.base.replace("http://", "http://alice:hunter2@") + "/missing"
        with pytest.raises(NetworkError) as caught:
            download_bytes(url, LOOPBACK, Room(None, "node1:dram"), TaskSignal("t"))
    assert "hunter2" not in str(caught.value.to_dict())
    assert caught.value.details["url"].startswith("http://***@127.0.0.1:")
    with pytest.raises(Forbidden) as caught:
        download_bytes("http://alice:hunter2@10.0.0.1/x", LOOPBACK, Room(None, "d"),
                       TaskSignal("t"))
    assert "hunter2" not in str(caught.value.to_dict())


@pytest.mark.parametrize("unsized", [False, True], ids=["declared", "counted"])
def test_a_chunk_download_stops_once_it_outgrows_the_device(unsized):
    with Source() as src:
        src.files["big"] = b"x" * 5_000_000
        if unsized:
            src.unsized.add("big")
        with pytest.raises(InsufficientMemory) as caught:
            download_bytes(src.url("big"), LOOPBACK, Room(1_000_000, "node1:dram"),
                           TaskSignal("t"))
    details = caught.value.details
    assert details["available"] == 1_000_000 and details["device"] == "node1:dram"
    assert details["required"] > 1_000_000
    if unsized:  # stopped as the bytes arrived, not after reading them all
        assert details["required"] < 5_000_000


def test_a_chunk_download_over_the_size_limit_is_payload_too_large():
    with Source() as src:
        src.files["big"] = b"x" * 3_000_000
        src.unsized.add("big")
        with pytest.raises(PayloadTooLarge) as caught:
            download_bytes(src.url("big"), LOOPBACK, Room(None, "node1:dram", limit=2_000_000),
                           TaskSignal("t"))
    assert caught.value.details["limit"] == 2_000_000
    assert 2_000_000 < caught.value.details["size"] < 3_000_000


@pytest.mark.parametrize("room", [Room(1_500_000, "node1:disk"),
                                  Room(None, "node1:disk", limit=1_500_000)],
                         ids=["free bytes", "size limit"])
def test_a_weight_download_outgrowing_its_room_leaves_nothing(tmp_path, room):
    store = WeightStore(tmp_path / "models")
    with Source() as src:
        src.files["w.safetensors"] = b"\0" * 4_000_000
        src.unsized.add("w.safetensors")
        with pytest.raises((InsufficientMemory, PayloadTooLarge)) as caught:
            store.download("m", 1, "disk", src.url("w.safetensors"), TaskSignal("t"),
                           policy=LOOPBACK, room=room)
        assert len(src.requests) == 1  # not retried
    assert caught.value.status in (507, 413)
    assert store.copies() == {} and list(store.folder.rglob("*.part")) == []


def test_a_weight_download_to_a_denied_address_is_forbidden_and_not_retried(tmp_path):
    store = WeightStore(tmp_path / "models")
    with Source() as src:
        src.redirects["w"] = "http://169.254.169.254/w"
        with pytest.raises(Forbidden):
            store.download("m", 1, "disk", src.url("w"), TaskSignal("t"), policy=LOOPBACK)
        assert len(src.requests) == 1
    assert list(store.folder.rglob("*.part")) == []
