"""Request body parsers for the API."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, plus a 400 for nesting too deep to decode.

    Python's decoder gives up on arrays or objects nested about a thousand deep (a 2 KB
    body of ``[[[[...``) with RecursionError, which is not the ValueError DRF turns into
    a parse error: without this, such a body was an internal error (500).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
