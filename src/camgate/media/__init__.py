"""Pictures from cameras: snapshots decoded from one keyframe of a camera's RTSP stream.

The agent owns camera I/O, so it runs the captures (``snapshots.py``), each in a child
process (``grab.py``); the web server asks it over the control socket (``views.py``).
"""
