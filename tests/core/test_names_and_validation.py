import pytest
from pydantic import BaseModel, ConfigDict

from gswarm_jupyter.core.errors import InvalidRequest
from gswarm_jupyter.core.names import DeviceRef, check_model_name, parse_device
from gswarm_jupyter.core.pagination import PageQuery, paginate
from gswarm_jupyter.core.validation import validate


def test_a_qualified_device_names_its_node():
    assert parse_device("node2:gpu1", ["node1", "node2"]) == DeviceRef("node2", "gpu1")


def test_a_bare_device_means_the_only_node():
    assert str(parse_device("dram", ["node1"])) == "node1:dram"


def test_a_bare_device_on_several_nodes_is_refused():
    with pytest.raises(InvalidRequest) as info:
        parse_device("dram", ["node1", "node2"])
    assert info.value.details["field"] == "device"


# Hostile spellings: `$` matches before a trailing newline, and `\d` takes any script's digits.
HOSTILE_SUFFIXES = ["\n", "\r", "\r\n", "\x00", "/../x", "\u2028", " "]


@pytest.mark.parametrize(
    "text",
    ["node1:tpu0", "node1:", ":dram", "node1:gpu", "node1:vgpux", "node1:gpu\u0661",
     "node1:gpu\uff10", "node1:dr\u0430m", *(f"node1:dram{s}" for s in HOSTILE_SUFFIXES)],
)
def test_malformed_devices_are_refused(text):
    with pytest.raises(InvalidRequest):
        parse_device(text, ["node1"])


@pytest.mark.parametrize("name", ["m", "gpt-2.small_v1", "A" * 128])
def test_good_model_names(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-lead", "has space", "a/b", "A" * 129, "..", "../etc", "m\u0430del", "\uff4d",
     "m\u0661", *(f"model{s}" for s in HOSTILE_SUFFIXES)],
)
def test_bad_model_names(name):
    with pytest.raises(InvalidRequest):
        check_model_name(name)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Inner


def test_validation_names_the_nested_field():
    with pytest.raises(InvalidRequest) as info:
        validate(Outer, {"inner": {"size": "big"}})
    assert info.value.details["field"] == "inner.size"


def test_validation_refuses_unknown_fields_by_name():
    with pytest.raises(InvalidRequest) as info:
        validate(Outer, {"inner": {"size": 1}, "colour": "red"})
    assert info.value.details["field"] == "colour"


def test_pagination_answers_one_page_and_the_total():
    page = paginate(list(range(45)), PageQuery(page=3, per_page=20), "items")
    assert page == {"items": list(range(40, 45)), "total": 45, "page": 3, "per_page": 20}
