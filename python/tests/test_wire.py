"""The frame codecs on their own, malformed input included: the byte layouts documented in
the Rust crate protocol/ (request.rs, bus.rs, delivery.rs, mdp.rs)."""

from __future__ import annotations

import struct

import pytest

from zhub import _wire as wire


def test_a_request_is_laid_out_as_request_rs_documents():
    frames = wire.encode_request(0x0102030405060708, "echo", 1500, [b"body"])
    assert frames == [b"ZHC01", b"\x01", bytes(range(1, 9)), b"echo", struct.pack(">I", 1500), b"body"]
    # A timeout beyond u32 milliseconds is clamped, not wrapped.
    assert wire.encode_request(1, "s", 2**40, [])[4] == b"\xff\xff\xff\xff"


def test_replies_decode_and_malformed_ones_are_refused():
    good = [b"ZHC01", b"\x02", struct.pack(">Q", 7), struct.pack(">H", 404), b"no such service"]
    reply = wire.decode_reply(good)
    assert (reply.id, reply.status, reply.reason()) == (7, wire.Status.NO_SERVICE, "no such service")
    for bad in [
        [],
        [b"ZHC01"],
        [b"MDPC01", b"\x02", b"x" * 8, b"\x00\xc8"],
        [b"ZHC01", b"\x01", b"x" * 8, b"\x00\xc8"],
        [b"ZHC01", b"\x02", b"x" * 8],
        [b"ZHC01", b"\x02", b"x" * 7, b"\x00\xc8"],
        [b"ZHC01", b"\x02", b"x" * 8, b"\xc8"],
    ]:
        with pytest.raises(ValueError):
            wire.decode_reply(bad)


def test_bus_frames_round_trip_with_the_documented_offsets():
    header = wire.BusHeader(publisher=1, seq=2, timestamp_us=3, lamport=4, encoding=wire.ENCODING_MSGPACK)
    frame = wire.encode_bus("a.b", header, b"xyz")
    t = 3
    assert frame[:t] == b"a.b" and frame[t] == 0
    assert frame[t + 1] == wire.HEADER_VERSION and frame[t + 2] == 1
    assert struct.unpack(">QQQQ", frame[t + 3 : t + 35]) == (1, 2, 3, 4)
    assert frame[t + 35 :] == b"xyz"
    assert wire.decode_bus(frame) == ("a.b", header, b"xyz")


def test_malformed_bus_frames_are_refused():
    header = wire.BusHeader(1, 2, 3, 4, wire.ENCODING_RAW)
    frame = wire.encode_bus("t", header, b"")
    for bad in [
        b"no terminator",
        b"\x00" + frame[2:],  # empty topic
        frame[:-1],  # short header
        frame[:2] + b"\x02" + frame[3:],  # unknown version
        frame[:3] + b"\x07" + frame[4:],  # unknown encoding
        b"x" * 1025 + frame[1:],  # topic over 1024 bytes
    ]:
        with pytest.raises(ValueError):
            wire.decode_bus(bad)


def test_envelopes_and_subscriptions():
    assert wire.address(7) == b"\x00" + struct.pack(">Q", 7)
    assert wire.interest(7, b"s.") == wire.address(7) + b"\x01s."
    assert wire.decode_envelope(wire.address(7) + struct.pack(">Q", 42) + b"rest") == (7, 42)
    with pytest.raises(ValueError):
        wire.decode_envelope(wire.address(7))
    with pytest.raises(ValueError):
        wire.decode_envelope(b"topic\x00" + b"\x00" * 20)


def test_ready_carries_credit_only_when_it_is_not_one():
    assert wire.encode_ready("echo", 1) == [b"MDPW01", b"\x01", b"echo"]
    assert wire.encode_ready("echo", 16) == [b"MDPW01", b"\x01", b"echo", struct.pack(">I", 16)]


def test_names_follow_the_brokers_rules():
    assert wire.check_service("echo") is None
    assert wire.check_service("with space") is None
    assert wire.check_service("") == "empty"
    assert wire.check_service("x" * 256) == "longer than 255 bytes"
    assert wire.check_service("a\nb") == "contains a control character"
    assert wire.check_topic("t") is None and wire.check_topic("") == "empty"
    assert wire.check_prefix("") is None


def test_lamport_rules():
    clock = wire.LamportClock()
    assert clock.tick() == 1
    assert clock.observe(10) == 11
    assert clock.observe(3) == 12
    assert clock.tick() == 13
