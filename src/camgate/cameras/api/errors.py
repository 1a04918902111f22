"""API error bodies: always JSON, never a traceback page."""

from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler

log = logging.getLogger(__name__)


def api_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "Request body is too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    # Anything else is our bug: log it with its traceback, answer without one.
    log.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return Response({"detail": "Internal error; see the gateway log."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
