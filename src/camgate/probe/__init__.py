"""Camera health probes: is the camera's RTSP stream really there, and what is it?

The parsing (RTSP answers, authentication, SDP, H.264/H.265 parameter sets) and the
probe's decisions are sans-I/O, in small modules tested on bytes; ``net.py`` is the thin
asyncio layer that moves those bytes over real sockets, with a deadline on every step.
"""
