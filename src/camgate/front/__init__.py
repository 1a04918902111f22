"""The web front: the asyncio server `camgate web` puts before gunicorn.

gunicorn's gthread workers give each connection a thread while its request is read, so a
few clients that send their request slowly hold every thread and nobody else is answered
(slowloris). The front reads whole requests itself, cheaply and with deadlines, and
hands gunicorn only complete ones, over a Unix socket nothing else can reach.
"""
