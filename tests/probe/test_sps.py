"""Picture sizes from real parameter sets (encoded by ffmpeg's libx264 and libx265)."""

from __future__ import annotations

import base64

import pytest

from camgate.probe.sps import BitReader, SpsError, parse_h264_sps, parse_h265_sps, unescape_rbsp

H264 = {  # ffmpeg -f lavfi -i testsrc=size=WxH:rate=R -c:v libx264 ... ; the SPS NAL unit
    "Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY": (1920, 1080, 25.0),  # High, 1088 rows cropped to 1080
    "Z0LAH9kAUAW7ARAAAAMAEAAAAwPA8YMkgA==": (1280, 720, 30.0),  # Baseline
    "Z2QAHqzZQLQk2AiAAAADAIAAABkPihTL": (720, 576, 25.0),  # interlaced: frame_mbs_only_flag 0
    "Z2QAFqzZQKAv+XARAAADAAEAAAMAHg8WLZY=": (640, 360, 15.0),  # 368 rows cropped to 360
    "Z/QADJGbKCwS2AiAAAADAIAAAAoHihTL": (352, 288, 10.0),  # High 4:4:4: chroma_format_idc 3
}
H265 = {
    "QgEBAWAAAAMAkAAAAwAAAwB4oAPAgBDlllZpJMrwFoCAAAADAIAAAAyE": (1920, 1080),  # conformance window
    "QgEBAWAAAAMAkAAAAwAAAwBdoAKAgC0WWVmkkyvAWgIAAAMAAgAAAwA8EA==": (1280, 720),
}


@pytest.mark.parametrize("sps, expected", H264.items())
def test_h264_sizes_and_frame_rates(sps, expected):
    facts = parse_h264_sps(base64.b64decode(sps))
    assert (facts.width, facts.height, facts.fps) == expected


@pytest.mark.parametrize("sps, expected", H265.items())
def test_h265_sizes(sps, expected):
    facts = parse_h265_sps(base64.b64decode(sps))
    assert (facts.width, facts.height) == expected


class BitWriter:
    def __init__(self):
        self.bits = []

    def u(self, bits, value):
        self.bits += [(value >> (bits - 1 - i)) & 1 for i in range(bits)]

    def ue(self, value):
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value):
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def bytes(self):
        bits = self.bits + [1] + [0] * (-(len(self.bits) + 1) % 8)  # rbsp trailing bits
        return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))


def test_h264_scaling_matrices_are_skipped():
    # x264 never writes SPS scaling lists, so this SPS is built by hand: High profile,
    # 4:2:0, one 4x4 list with deltas and one 8x8 list that stops early, 800x600 cropped.
    w = BitWriter()
    w.u(8, 100), w.u(16, 0x001F), w.ue(0)  # profile, constraints + level, sps id
    w.ue(1), w.ue(0), w.ue(0), w.u(1, 0)  # 4:2:0, 8 bits, no bypass
    w.u(1, 1)  # seq_scaling_matrix_present_flag
    for index in range(8):
        present = index in (0, 6)
        w.u(1, int(present))
        if index == 0:
            for delta in [3, -2] + [0] * 14:
                w.se(delta)
        elif index == 6:
            w.se(-8)  # nextScale 0: the default list, nothing more is read
    w.ue(0), w.ue(0), w.ue(0)  # log2_max_frame_num, poc type 0, log2_max_poc_lsb
    w.ue(1), w.u(1, 0)  # max refs, gaps
    w.ue(50 - 1), w.ue(38 - 1)  # 800 x 608
    w.u(1, 1), w.u(1, 1)  # frame_mbs_only, direct_8x8
    w.u(1, 1), w.ue(0), w.ue(0), w.ue(0), w.ue(4)  # crop 8 rows (4 chroma units)
    w.u(1, 0)  # no VUI
    facts = parse_h264_sps(b"\x67" + w.bytes())
    assert (facts.width, facts.height, facts.fps) == (800, 600, None)


def test_emulation_prevention_bytes_are_removed():
    assert unescape_rbsp(b"\x00\x00\x03\x01\x00\x00\x03\x00\x03") == b"\x00\x00\x01\x00\x00\x00\x03"


@pytest.mark.parametrize("nal", [b"", b"\x68\x00", b"\x67\x64", b"\x67" + b"\x00" * 12, b"\x42\x01"])
def test_hostile_or_truncated_parameter_sets_raise_sps_error(nal):
    with pytest.raises(SpsError):
        (parse_h265_sps if nal.startswith(b"\x42") else parse_h264_sps)(nal)


def test_an_oversized_parameter_set_is_refused_before_it_is_walked():
    # A valid SPS padded to 60 KB (an SDP may carry that much): its size is not trusted.
    padded = base64.b64decode("Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY") + b"\x00\x00\x03" * 20000
    with pytest.raises(SpsError, match="longer than 1024 bytes"):
        parse_h264_sps(padded)


def test_exp_golomb_codes_are_bounded():
    with pytest.raises(SpsError, match="32 bits"):
        BitReader(b"\x00" * 8).ue()
