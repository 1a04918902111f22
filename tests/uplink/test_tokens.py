"""The access-token codec (uplink protocol, section 1)."""

import base64
import json

import pytest

from camgate.uplink.tokens import AccessToken, InvalidToken, decode_access_token, encode_access_token, try_decode_camid

EXAMPLE = {
    "camid": 248527,
    "cmngrid": 248964,
    "access": "all",
    "token": "share.eyJzaSI6IDIzNTYzOX0.61a964c3tbc1fab00.xBWXdksAURv6ws5MOZX-AQIh-KM",
    "api": "web.skyvr.videoexpertsgroup.com",
    "cam": "cam.skyvr.videoexpertsgroup.com",
    "uplink": "uplink.example.com",
}


def b64(obj) -> str:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return base64.b64encode(text.encode()).decode()


def test_decodes_the_spec_example():
    token = decode_access_token(b64(EXAMPLE))
    assert isinstance(token, AccessToken)
    assert token.camid == 248527
    assert token.cmngrid == 248964
    assert token.uplink == "uplink.example.com"
    assert token.access == "all"
    assert token.payload == EXAMPLE
    assert token.raw == b64(EXAMPLE)


def test_keys_in_any_order_are_decoded_not_prefix_matched():
    reordered = {"access": "watch", "camid": 7}
    raw = b64(reordered)
    assert raw.startswith("eyJhY2Nlc3Mi")
    assert decode_access_token(raw).camid == 7
    assert b64({"camid": 1}).startswith("eyJjYW1pZCI6")


def test_missing_padding_is_restored():
    raw = b64({"camid": 12})
    assert raw.endswith("=")
    assert decode_access_token(raw.rstrip("=")).camid == 12


def test_surrounding_whitespace_is_ignored():
    assert decode_access_token("  " + b64({"camid": 3}) + "\n").camid == 3


def test_unknown_keys_kept_and_optional_ones_absent():
    token = decode_access_token(b64({"camid": 1, "future": [1, 2]}))
    assert token.payload["future"] == [1, 2]
    assert token.cmngrid is None and token.uplink is None and token.access is None


def test_uplink_and_cmngrid_types_are_checked():
    token = decode_access_token(b64({"camid": 1, "cmngrid": "2", "uplink": ""}))
    assert token.cmngrid is None and token.uplink is None
    assert decode_access_token(b64({"camid": 1, "cmngrid": True})).cmngrid is None


@pytest.mark.parametrize(
    "raw, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("not base64!!", "not valid base64"),
        ("eyJj*W1pZCI6", "not valid base64"),
        (base64.b64encode(b"\xff\xfe\xfd").decode(), "JSON"),
        (b64("not json"), "JSON"),
        (b64([1, 2]), "JSON object"),
        (b64("42"), "JSON object"),
        (b64({"cmngrid": 1}), "integer camid"),
        (b64({"camid": "248527"}), "integer camid"),
        (b64({"camid": 1.5}), "integer camid"),
        (b64({"camid": True}), "integer camid"),
        (b64({"camid": None}), "integer camid"),
        (b64('{"camid": ' + "1" * 5000 + "}"), "JSON"),  # past Python's int-from-text limit
        (b64('{"camid": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"), "nested too deeply"),
        (b64("[" * 100_000), "nested too deeply"),
        (b64('{"a": ' * 100_000), "nested too deeply"),
    ],
)
def test_invalid_tokens(raw, message):
    with pytest.raises(InvalidToken) as info:
        decode_access_token(raw)
    assert message in str(info.value)


def test_non_string_is_invalid():
    with pytest.raises(InvalidToken):
        decode_access_token(None)  # type: ignore[arg-type]


def test_repr_never_shows_the_secret():
    token = decode_access_token(b64(EXAMPLE))
    assert EXAMPLE["token"] not in repr(token)
    assert token.raw not in repr(token)
    assert "248527" in repr(token)


def test_encode_round_trip_and_validation():
    raw = encode_access_token(EXAMPLE)
    assert decode_access_token(raw).payload == EXAMPLE
    assert raw == b64(EXAMPLE)
    with pytest.raises(InvalidToken):
        encode_access_token({"camid": "1"})
    with pytest.raises(InvalidToken):
        encode_access_token({"camid": False})


def test_try_decode_camid():
    assert try_decode_camid(b64({"camid": 9})) == 9
    assert try_decode_camid("") is None
    assert try_decode_camid(None) is None
    assert try_decode_camid("garbage") is None
