"""The protocol's own frames, described: every built-in error, progress, s.closing."""

from channelbus import protocol
from channelbus.contract import builtin


def test_every_builtin_error_is_described_with_its_details():
    builtins = {cls.type for cls in protocol.BusError.__subclasses__()}
    assert set(builtin.ERRORS) == builtins
    summary, payload = builtin.ERRORS["error.rate_limited"]
    assert summary == "The connection sends faster than allowed. Details: ``retry_after`` (seconds)."
    assert payload.model_validate({"msg": "slow down", "retry_after": 1}).retry_after == 1
    assert set(builtin.REQUEST_ERRORS) <= set(builtin.ERRORS)


def test_error_payloads_keep_unknown_details():
    # A handler's own details travel beside msg: the schema allows them.
    details = builtin.ErrorDetails.model_validate({"msg": "Sold out.", "item": 3})
    assert details.model_dump() == {"msg": "Sold out.", "item": 3}
    assert builtin.ErrorDetails.model_json_schema()["additionalProperties"] is True
    item = builtin.ValidationError.model_json_schema()["$defs"]["ValidationErrorItem"]
    assert item["properties"]["loc"]["items"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_progress_and_closing():
    assert builtin.Progress(done=1).model_dump(exclude_none=True) == {"done": 1}
    assert list(builtin.FRAMES) == ["s.closing"]
    assert builtin.FRAMES["s.closing"][1].model_validate({"code": 4401, "reason": "Sign in."}).code == 4401
