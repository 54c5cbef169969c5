"""The protocol core: every error row of the contract, encoding, and property tests. No Django."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channelbus.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    MAX_PAYLOAD_DEPTH,
    BadRequest,
    BusError,
    Envelope,
    TooLarge,
    decode,
    encode,
)


def test_decodes_a_full_envelope():
    assert decode('{"t":"chat.send","i":"abc","p":{"text":"hi"}}') == Envelope(
        "chat.send", "abc", {"text": "hi"}
    )


def test_decodes_minimal_envelope_and_bytes():
    assert decode(b'{"t":"s.ping"}') == Envelope("s.ping")


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "",
        "{",
        '{"t": "a"',
        "[1, 2]",
        '"a string"',
        "42",
        "null",
        '{"t": NaN}',
        b"\xff\xfe",
    ],
)
def test_bad_request_for_non_json_or_non_object(frame):
    with pytest.raises(BadRequest) as exc:
        decode(frame)
    assert exc.value.trace_id is None
    assert exc.value.type == "error.bad_request"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        ('{"t":"a.b","i":"x","z":1}', "Unknown envelope keys: z"),
        ('{"t":"a.b","i":"x","s":"s"}', "Unknown envelope keys: s"),
        ('{"i":"x"}', "'t' (the message type) is required"),
        ('{"t":null,"i":"x"}', "'t' (the message type) is required"),
        ('{"t":"Chat.Send","i":"x"}', "lower-case dotted"),
        ('{"t":"chat..send","i":"x"}', "lower-case dotted"),
        ('{"t":".chat","i":"x"}', "lower-case dotted"),
        ('{"t":"chat.","i":"x"}', "lower-case dotted"),
        ('{"t":"1chat","i":"x"}', "lower-case dotted"),
        ('{"t":"chat send","i":"x"}', "lower-case dotted"),
        ('{"t":"chat.send\\n","i":"x"}', "lower-case dotted"),
        ('{"t":5,"i":"x"}', "lower-case dotted"),
        ('{"t":["a"],"i":"x"}', "lower-case dotted"),
    ],
)
def test_bad_request_keeps_a_readable_trace_id(frame, message):
    with pytest.raises(BadRequest) as exc:
        decode(frame)
    assert message in exc.value.msg
    assert exc.value.trace_id == "x"


def test_type_name_length_limit():
    assert decode(orjson.dumps({"t": "a" * 100})).t == "a" * 100
    with pytest.raises(BadRequest):
        decode(orjson.dumps({"t": "a" * 101, "i": "x"}))


@pytest.mark.parametrize("i", ["", "x" * 65, 5, None.__class__, ["a"], {"a": 1}, True])
def test_malformed_trace_id_is_bad_request_without_i(i):
    value = i if not isinstance(i, type) else 1.5
    with pytest.raises(BadRequest) as exc:
        decode(orjson.dumps({"t": "a.b", "i": value}))
    assert exc.value.trace_id is None
    assert "'i'" in exc.value.msg


def test_trace_id_limits():
    assert decode(orjson.dumps({"t": "a", "i": "x" * 64})).i == "x" * 64
    assert decode('{"t":"a","i":null}').i is None


def test_too_large_counts_utf8_bytes():
    limit = 1000
    ascii_frame = orjson.dumps({"t": "a", "p": "x" * (limit - 20)}).decode()
    assert decode(ascii_frame, limit).t == "a"
    wide = orjson.dumps({"t": "a", "p": "é" * 600}).decode()  # ~600 chars but 1200 bytes
    assert len(wide) < limit
    with pytest.raises(TooLarge) as exc:
        decode(wide, limit)
    assert exc.value.payload() == {"msg": f"The frame is larger than {limit} bytes.", "limit": limit}


def test_too_large_keeps_the_trace_id_when_readable():
    frame = orjson.dumps({"t": "a", "i": "big", "p": "x" * 2000})
    with pytest.raises(TooLarge) as exc:
        decode(frame, 1000)
    assert exc.value.trace_id == "big"
    with pytest.raises(TooLarge) as exc:
        decode(orjson.dumps({"t": "a", "i": "huge", "p": "x" * 5000}), 1000)  # over 4x the limit: not parsed
    assert exc.value.trace_id is None
    with pytest.raises(TooLarge) as exc:
        decode(b'{"t":"a","i":"big","p":"' + b"x" * 2000, 1000)  # not JSON: no i
    assert exc.value.trace_id is None


def test_default_limit_is_256_kib():
    frame = '{"t":"a","i":"big","p":"' + "x" * DEFAULT_MAX_FRAME_BYTES + '"}'
    with pytest.raises(TooLarge):
        decode(frame)


def test_encode_leaves_out_null_keys():
    assert orjson.loads(encode("a.b")) == {"t": "a.b"}
    assert orjson.loads(encode("a.b", {"x": None}, i="1", s="s", c="room:1", n=3)) == {
        "t": "a.b",
        "i": "1",
        "p": {"x": None},
        "s": "s",
        "c": "room:1",
        "n": 3,
    }


def test_encode_refuses_unserialisable_payload():
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        encode("a.b", {"x": object()})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_an_envelope_or_a_contract_error(data):
    try:
        result = decode(data, 200)
    except BusError as exc:
        assert isinstance(exc, BadRequest | TooLarge)
    else:
        assert isinstance(result, Envelope)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_gives_an_envelope_or_a_contract_error(text):
    try:
        result = decode(text, 400)
    except BusError as exc:
        assert isinstance(exc, BadRequest | TooLarge)
    else:
        assert isinstance(result, Envelope)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["t", "i", "p", "s", "x"]) | st.text(max_size=3),
        json_values | st.from_regex(r"[a-z][a-z0-9_]{0,5}(\.[a-z0-9_]{1,4}){0,2}", fullmatch=True),
        max_size=5,
    )
    | json_values
)
def test_arbitrary_json_gives_an_envelope_or_a_contract_error(value):
    try:
        frame = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return
    try:
        env = decode(frame)
    except BusError as exc:
        assert isinstance(exc, BadRequest)
        if isinstance(value, dict) and isinstance(value.get("i"), str) and 0 < len(value["i"]) <= 64:
            assert exc.trace_id == value["i"]
    else:
        assert isinstance(value, dict)
        assert set(value) <= {"t", "i", "p"}
        assert env.t == value["t"]
        assert env.i == value.get("i")
        assert env.p == value.get("p")


# ------------------------------------------------------------------------------ nesting


def nested(depth: int, opener: str = "[") -> str:
    """Arrays (``[[[]]]``) or objects (``{"a":{"a":1}}``) nested ``depth`` levels deep."""
    return "[" * depth + "]" * depth if opener == "[" else '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("frame_type", [str, bytes])
def test_a_payload_at_the_depth_limit_is_decoded(frame_type):
    text = '{"t":"x.y","i":"7","p":' + nested(MAX_PAYLOAD_DEPTH) + "}"
    env = decode(text if frame_type is str else text.encode())
    depth, value = 0, env.p
    while isinstance(value, list):
        depth, value = depth + 1, (value[0] if value else None)
    assert depth == MAX_PAYLOAD_DEPTH


@pytest.mark.parametrize("frame_type", [str, bytes])
@pytest.mark.parametrize("opener", ["[", "{"])
def test_a_payload_deeper_than_the_limit_is_a_bad_request_with_its_i(frame_type, opener):
    text = '{"t":"x.y","i":"7","p":' + nested(MAX_PAYLOAD_DEPTH + 1, opener) + "}"
    with pytest.raises(BadRequest) as exc:
        decode(text if frame_type is str else text.encode())
    assert exc.value.msg == f"'p' is nested deeper than {MAX_PAYLOAD_DEPTH} levels."
    assert exc.value.trace_id == "7"


def test_many_brackets_side_by_side_are_not_depth():
    wide = "[" + ",".join(["[1]"] * 1000) + "]"
    assert len(decode('{"t":"x.y","p":' + wide + "}").p) == 1000


def test_a_deep_branch_anywhere_is_found():
    text = '{"t":"x.y","p":{"a":[1,2],"b":[[0],' + nested(MAX_PAYLOAD_DEPTH) + "]}}"
    with pytest.raises(BadRequest):
        decode(text)


@pytest.mark.parametrize("i", ["a\nb", "x\r", "\x00", "\x1b[31m", "a\u2028b", "\x7f"])
def test_a_trace_id_with_control_characters_is_refused(i):
    """It is written into log lines: a newline could forge one, an escape sequence garble a terminal."""
    with pytest.raises(BadRequest) as exc:
        decode(orjson.dumps({"t": "x.y", "i": i}))
    assert exc.value.msg == "'i' must be a string of 1 to 64 printable characters."
    assert exc.value.trace_id is None


def test_a_trace_id_may_be_any_printable_text():
    assert decode(orjson.dumps({"t": "x.y", "i": "req-7 é✓ 字"})).i == "req-7 é✓ 字"
