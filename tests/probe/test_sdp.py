"""Stream facts from SDPs as cameras write them."""

from __future__ import annotations

from camgate.probe.result import AudioFacts, VideoFacts
from camgate.probe.sdp import stream_facts

HIKVISION = b"""v=0\r
o=- 1109162014219182 1109162014219192 IN IP4 x.y.z.w\r
s=Media Presentation\r
e=NONE\r
b=AS:5050\r
t=0 0\r
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/?transportmode=unicast\r
m=video 0 RTP/AVP 96\r
b=AS:5000\r
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1?transportmode=unicast\r
a=rtpmap:96 H264/90000\r
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z2QAKKzZQHgCJ+XARAAAAwAEAAADAMg8YMZY,aOvjyyLA\r
a=Media_header:MEDIAINFO=494D4B48010100000400000100000000000000000000000000000000000000000000000000000000;\r
a=appversion:1.0\r
m=audio 0 RTP/AVP 0\r
a=rtpmap:0 PCMU/8000\r
"""

GSTREAMER_MJPEG = b"""v=0\r
o=- 1188340656180883 1 IN IP4 127.0.0.1\r
s=Session streamed with GStreamer\r
t=0 0\r
a=tool:GStreamer\r
m=video 0 RTP/AVP 26\r
c=IN IP4 0.0.0.0\r
a=control:stream=0\r
a=framerate:15\r
a=x-dimensions:320,240\r
"""

AXIS_H265 = b"""v=0\r
s=Session streamed by "nessyMediaServer"\r
t=0 0\r
m=video 0 RTP/AVP 96\r
a=rtpmap:96 H265/90000\r
a=fmtp:96 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwB4lZgJ;sprop-sps=QgEBAWAAAAMAkAAAAwAAAwB4oAPAgBDlllZpJMrwFoCAAAADAIAAAAyE;sprop-pps=RAHBcrRiQA==\r
a=x-framerate:30\r
m=audio 0 RTP/AVP 97\r
a=rtpmap:97 MPEG4-GENERIC/16000/1\r
a=fmtp:97 streamtype=5; profile-level-id=15; mode=AAC-hbr; config=1408\r
"""


def test_hikvision_h264_with_its_sps_and_g711():
    facts = stream_facts(HIKVISION)
    assert facts.video == VideoFacts("H.264", 1920, 1080, 25.0)  # the frame rate from the SPS timing
    assert facts.audio == AudioFacts("G.711 µ-law")


def test_gstreamer_mjpeg_static_payload_with_dimensions_and_framerate():
    assert stream_facts(GSTREAMER_MJPEG).video == VideoFacts("MJPEG", 320, 240, 15.0)


def test_h265_from_sprop_sps_and_aac():
    facts = stream_facts(AXIS_H265)
    assert facts.video == VideoFacts("H.265", 1920, 1080, 30.0)
    assert facts.audio == AudioFacts("AAC")


def test_axis_cliprect_and_framesize():
    cliprect = b"m=video 0 RTP/AVP 26\r\na=cliprect:0,0,480,640\r\n"
    assert stream_facts(cliprect).video == VideoFacts("MJPEG", 640, 480, None)
    framesize = b"m=video 0 RTP/AVP 97\r\na=rtpmap:97 MP4V-ES/90000\r\na=framesize:97 704-576\r\n"
    assert stream_facts(framesize).video == VideoFacts("MPEG-4", 704, 576, None)


def test_audio_only_and_empty_descriptions_have_no_video():
    audio_only = stream_facts(b"v=0\r\nm=audio 0 RTP/AVP 8\r\n")
    assert (audio_only.video, audio_only.audio) == (None, AudioFacts("G.711 A-law"))
    assert stream_facts(b"").video is None


def test_a_broken_sps_still_names_the_codec():
    sdp = b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=!!notbase64,AAAA\r\n"
    assert stream_facts(sdp).video == VideoFacts("H.264", None, None, None)
    truncated = b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 sprop-parameter-sets=Z2QAKA\r\n"
    assert stream_facts(truncated).video == VideoFacts("H.264", None, None, None)


def test_unknown_codecs_are_named_as_given_but_never_with_control_characters():
    sdp = b"m=video 0 RTP/AVP 98\r\na=rtpmap:98 X-W\x1bEIRD/90000\r\na=framerate:1e9\r\n"
    video = stream_facts(sdp).video
    assert video.codec == "X-W?EIRD" and video.fps is None
