"""The protocol's errors (channelbus/protocol/errors.py): every error row of the contract. No Django."""

import orjson
import pytest

from channelbus.protocol import (
    BadRequest,
    BusError,
    JobFailed,
    NotFound,
    RateLimited,
    ServerError,
    SubscribeRefused,
    TooLarge,
    Unauthorized,
    UnknownMessageType,
    ValidationFailed,
    error_frame,
)


@pytest.mark.parametrize(
    ("error", "payload"),
    [
        (BadRequest(), {"msg": "The frame is not a valid envelope."}),
        (UnknownMessageType(type_name="x.y"), {"msg": "Unknown message type.", "type_name": "x.y"}),
        (
            ValidationFailed(type_name="x.y", errors=[{"loc": ["a"], "msg": "m", "type": "t"}]),
            {
                "msg": "The payload is not valid.",
                "type_name": "x.y",
                "errors": [{"loc": ["a"], "msg": "m", "type": "t"}],
            },
        ),
        (Unauthorized(type_name="x.y"), {"msg": "You may not send this message.", "type_name": "x.y"}),
        (NotFound(), {"msg": "Not found."}),
        (
            SubscribeRefused(topic="room:1"),
            {"msg": "You may not subscribe to this topic.", "topic": "room:1"},
        ),
        (RateLimited(retry_after=0.5), {"msg": "Too many messages; slow down.", "retry_after": 0.5}),
        (TooLarge(limit=10), {"msg": "The frame is too large.", "limit": 10}),
        (
            JobFailed(type_name="x.y", attempts=3),
            {"msg": "The job failed.", "type_name": "x.y", "attempts": 3},
        ),
        (ServerError(), {"msg": "The server could not handle this message."}),
    ],
)
def test_every_error_row_encodes_as_the_contract_says(error, payload):
    error.trace_id = "r1"
    frame = orjson.loads(error_frame(error))
    assert frame == {"t": error.type, "i": "r1", "p": payload, "s": "f"}
    assert error.type.startswith("error.")


def test_domain_error_subclass():
    class OutOfStock(BusError):
        type = "error.out_of_stock"
        default_msg = "Sold out."

    frame = orjson.loads(error_frame(OutOfStock(item=3)))
    assert frame == {"t": "error.out_of_stock", "p": {"msg": "Sold out.", "item": 3}, "s": "f"}
