"""Picture size (and frame rate, when signalled) from H.264 and H.265 sequence parameter
sets, as cameras put them in the SDP (``sprop-parameter-sets``, ``sprop-sps``).

Only the fields before the size are walked (ITU-T H.264 7.3.2.1.1, H.265 7.3.2.2), plus
H.264's VUI timing for the frame rate. Bytes from a camera are untrusted: reading past
the end or an exp-Golomb code longer than 32 bits raises SpsError.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DIMENSION = 16384
MAX_NAL_BYTES = 1024  # a real SPS is under 100 bytes; a longer one only costs time
# H.264 profiles whose SPS carries chroma format, bit depths and scaling matrices.
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
# SubWidthC, SubHeightC by chroma_format_idc (4:0:0 has no chroma: units of 1).
_CHROMA_SUBSAMPLING = {0: (1, 1), 1: (2, 2), 2: (2, 1), 3: (1, 1)}


class SpsError(ValueError):
    pass


@dataclass(frozen=True)
class SpsFacts:
    width: int
    height: int
    fps: float | None = None


def unescape_rbsp(nal: bytes) -> bytes:
    """Drop the emulation-prevention byte of every 00 00 03."""
    if len(nal) > MAX_NAL_BYTES:
        raise SpsError(f"parameter set longer than {MAX_NAL_BYTES} bytes")
    if b"\x00\x00\x03" not in nal:
        return nal
    out, zeros = bytearray(), 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def u(self, bits: int) -> int:
        if self.position + bits > len(self.data) * 8:
            raise SpsError("parameter set ends early")
        value = 0
        for _ in range(bits):
            byte = self.data[self.position >> 3]
            value = (value << 1) | ((byte >> (7 - (self.position & 7))) & 1)
            self.position += 1
        return value

    def skip(self, bits: int) -> None:
        if self.position + bits > len(self.data) * 8:
            raise SpsError("parameter set ends early")
        self.position += bits

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise SpsError("exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _checked(width: int, height: int, fps: float | None = None) -> SpsFacts:
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        raise SpsError(f"implausible picture size {width}x{height}")
    return SpsFacts(width, height, fps)


def _skip_scaling_list(reader: BitReader, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following:
            following = (last + reader.se() + 256) % 256
        last = following or last


def parse_h264_sps(nal: bytes) -> SpsFacts:
    """Width and height (cropping and field coding applied) of an H.264 SPS NAL unit."""
    if not nal or nal[0] & 0x1F != 7:
        raise SpsError("not an H.264 sequence parameter set")
    reader = BitReader(unescape_rbsp(nal[1:]))
    profile_idc = reader.u(8)
    reader.skip(16)  # constraint flags, level_idc
    reader.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_colour_planes = 1, False
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc > 3:
            raise SpsError(f"chroma_format_idc {chroma_format_idc}")
        if chroma_format_idc == 3:
            separate_colour_planes = bool(reader.u(1))
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if reader.u(1):  # seq_scaling_matrix_present_flag
            for index in range(8 if chroma_format_idc != 3 else 12):
                if reader.u(1):
                    _skip_scaling_list(reader, 16 if index < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    pic_order_cnt_type = reader.ue()
    if pic_order_cnt_type == 0:
        reader.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif pic_order_cnt_type == 1:
        reader.skip(1)  # delta_pic_order_always_zero_flag
        reader.se()  # offset_for_non_ref_pic
        reader.se()  # offset_for_top_to_bottom_field
        cycle = reader.ue()
        if cycle > 255:
            raise SpsError("num_ref_frames_in_pic_order_cnt_cycle over 255")
        for _ in range(cycle):
            reader.se()
    reader.ue()  # max_num_ref_frames
    reader.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_in_mbs = reader.ue() + 1
    height_in_map_units = reader.ue() + 1
    frame_mbs_only = reader.u(1)
    if not frame_mbs_only:
        reader.skip(1)  # mb_adaptive_frame_field_flag
    reader.skip(1)  # direct_8x8_inference_flag
    width = width_in_mbs * 16
    height = (2 - frame_mbs_only) * height_in_map_units * 16
    if reader.u(1):  # frame_cropping_flag
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        if chroma_format_idc == 0 or separate_colour_planes:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_width, sub_height = _CHROMA_SUBSAMPLING[chroma_format_idc]
            unit_x, unit_y = sub_width, sub_height * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    fps = None
    try:
        if reader.u(1):  # vui_parameters_present_flag
            fps = _h264_vui_fps(reader)
    except SpsError:
        pass  # the size is known; a truncated VUI only costs the frame rate
    return _checked(width, height, fps)


def _h264_vui_fps(reader: BitReader) -> float | None:
    if reader.u(1):  # aspect_ratio_info_present_flag
        if reader.u(8) == 255:  # Extended_SAR
            reader.skip(32)
    if reader.u(1):  # overscan_info_present_flag
        reader.skip(1)
    if reader.u(1):  # video_signal_type_present_flag
        reader.skip(4)
        if reader.u(1):  # colour_description_present_flag
            reader.skip(24)
    if reader.u(1):  # chroma_loc_info_present_flag
        reader.ue()
        reader.ue()
    if not reader.u(1):  # timing_info_present_flag
        return None
    num_units_in_tick, time_scale = reader.u(32), reader.u(32)
    if not num_units_in_tick or not time_scale:
        return None
    fps = time_scale / (2 * num_units_in_tick)  # two ticks a frame (field-based clock)
    return round(fps, 3) if 0 < fps <= 1000 else None


def parse_h265_sps(nal: bytes) -> SpsFacts:
    """Width and height (conformance window applied) of an H.265 SPS NAL unit."""
    if len(nal) < 2 or (nal[0] >> 1) & 0x3F != 33:
        raise SpsError("not an H.265 sequence parameter set")
    reader = BitReader(unescape_rbsp(nal[2:]))
    reader.skip(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = reader.u(3)
    reader.skip(1)  # sps_temporal_id_nesting_flag
    reader.skip(88 + 8)  # general profile (2+1+5+32+4+43+1 bits) and general_level_idc
    present = [(reader.u(1), reader.u(1)) for _ in range(max_sub_layers_minus1)]
    if max_sub_layers_minus1:
        reader.skip(2 * (8 - max_sub_layers_minus1))  # reserved_zero_2bits
    for profile_present, level_present in present:
        reader.skip(88 * profile_present + 8 * level_present)
    reader.ue()  # sps_seq_parameter_set_id
    chroma_format_idc = reader.ue()
    if chroma_format_idc > 3:
        raise SpsError(f"chroma_format_idc {chroma_format_idc}")
    separate_colour_planes = chroma_format_idc == 3 and bool(reader.u(1))
    width, height = reader.ue(), reader.ue()
    if reader.u(1):  # conformance_window_flag
        left, right, top, bottom = reader.ue(), reader.ue(), reader.ue(), reader.ue()
        sub_width, sub_height = (1, 1) if separate_colour_planes else _CHROMA_SUBSAMPLING[chroma_format_idc]
        width -= sub_width * (left + right)
        height -= sub_height * (top + bottom)
    return _checked(width, height)
