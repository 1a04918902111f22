"""Create, update and delete a camera: the one write path for the REST API and the UI.

Both front ends validate their own input (serializer, form) and hand the values here.
Three rules hold for every write:

- an update writes the fields it was given and nothing else (``update_fields``), so two
  edits of different fields at the same moment both stick: a full-row save of a stale
  read used to undo the other edit;
- an update or delete of a row that is gone is ``CameraGone`` (404): it never re-inserts
  a camera that a racing delete removed;
- the agent is poked once the transaction has committed (``on_commit``), so it never
  reconciles from a state that is rolled back or not yet visible.
"""

from __future__ import annotations

from django.db import DatabaseError, IntegrityError, transaction

from camgate.agent.control import poke_agent
from camgate.agent.plan import camera_row, tunnel_restarts
from camgate.cameras.models import Camera, TunnelStatus
from camgate.core import TunnelState


class CameraGone(LookupError):
    """The camera was deleted (by another request) before this write reached it."""


class DuplicateCamid(ValueError):
    """Another camera took this token's camid between validation and the write."""


def create_camera(values: dict) -> Camera:
    camera = Camera(**values)
    try:
        with transaction.atomic():
            camera.save(force_insert=True)
            transaction.on_commit(poke_agent)
    except IntegrityError:
        raise DuplicateCamid() from None
    return camera


def update_camera(camera: Camera, values: dict) -> Camera:
    """Write ``values`` (field: new value) onto ``camera``'s row, and only those."""
    before = camera_row(camera)
    for name, value in values.items():
        setattr(camera, name, value)
    try:
        with transaction.atomic():
            camera.save(update_fields=[*values, "updated_at"], force_update=True)
            if camera.enabled and tunnel_restarts(before, camera_row(camera)):
                _report_restarting(camera)
            transaction.on_commit(poke_agent)
    except IntegrityError:
        raise DuplicateCamid() from None
    except DatabaseError as error:
        # Django's words when an UPDATE with update_fields matched no row.
        if "did not affect any rows" in str(error):
            raise CameraGone(camera.pk) from None
        raise
    return camera


def _report_restarting(camera: Camera) -> None:
    """The agent restarts this tunnel on the poke: the answer to the edit, and every read
    until the agent reports again, says so instead of a stale "up"."""
    TunnelStatus.objects.filter(camera=camera).exclude(state=TunnelState.STOPPED).update(
        state=TunnelState.CONNECTING, reason="restarting: the camera's tunnel settings changed",
        pid=None, endpoints=[], open_connections=0,
    )
    camera._state.fields_cache.pop("tunnel_status", None)  # read the new status, not the cached one


def delete_camera(camera: Camera) -> None:
    with transaction.atomic():
        deleted, _ = Camera.objects.filter(pk=camera.pk).delete()
        if not deleted:
            raise CameraGone(camera.pk)
        transaction.on_commit(poke_agent)
