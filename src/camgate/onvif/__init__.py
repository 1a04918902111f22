"""ONVIF: finding the cameras on the LAN (WS-Discovery) and reading their facts from
themselves (device and media services), for adding them in one step.

- probe_match.py: the Probe, and what a reply is worth (no I/O);
- targets.py: where a Probe may go (addresses, ranges, interfaces);
- discovery.py: sending it and gathering the answers, bounded;
- onvif_client.py, device.py: reading a camera's facts with its credentials;
- serializers.py, views.py: POST /api/discover/ and POST /api/onvif/.
"""
