import pytest

from gswarm_jupyter.core import errors


@pytest.mark.parametrize("cls", list(errors.ERRORS_BY_CODE.values()))
def test_every_error_survives_the_round_trip_through_its_envelope(cls):
    if cls is errors.InsufficientMemory:
        original = cls("full", required=10, available=3, device="node1:dram")
    elif cls is errors.PayloadTooLarge:
        original = cls("too big", limit=10, size=11, field="data")
    else:
        original = cls("something", {"field": "x"})
    rebuilt = errors.error_from_dict(original.to_dict())
    assert type(rebuilt) is cls
    assert rebuilt.message == original.message and rebuilt.details == original.details


def test_codes_and_statuses_match_the_contract():
    table = {cls.code: cls.status for cls in errors.ERRORS_BY_CODE.values()}
    assert table["INVALID_REQUEST"] == 400 and table["UNAUTHORIZED"] == 401
    assert table["FORBIDDEN"] == 403 and table["MODEL_NOT_FOUND"] == 404
    assert table["RATE_LIMIT_EXCEEDED"] == 429 and table["NOT_IMPLEMENTED"] == 501
    assert table["INSUFFICIENT_MEMORY"] == 507 and table["REQUEST_TIMEOUT"] == 504
    assert table["PAYLOAD_TOO_LARGE"] == 413 and errors.CODE_BY_STATUS[413] == "PAYLOAD_TOO_LARGE"


def test_insufficient_memory_says_what_was_needed():
    exc = errors.InsufficientMemory("no room", required=10, available=3, device="node1:gpu0")
    assert exc.details == {"required": 10, "available": 3, "device": "node1:gpu0"}


def test_payload_too_large_says_the_limit_and_the_size():
    exc = errors.PayloadTooLarge("too big", limit=10, size=11)
    assert exc.details == {"limit": 10, "size": 11}


def test_an_unknown_code_becomes_an_internal_error():
    assert type(errors.error_from_dict({"code": "NEW_THING", "message": "m"})) is errors.InternalError
