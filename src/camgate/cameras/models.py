"""The camera store: what the user wants (Camera) and what is true (TunnelStatus).

Desired state and reported state live in separate tables with separate writers: the web
server writes cameras, the agent writes tunnel status. Neither overwrites the other's
facts, so a status update can never undo an edit made a moment earlier.
"""

from __future__ import annotations

from django.db import models

from camgate.uplink.tokens import try_decode_camid

from camgate.core import GATEWAY_STATUS_KEY, TunnelState  # noqa: F401 (GATEWAY_STATUS_KEY: re-exported)


class Camera(models.Model):
    camera_id = models.AutoField(primary_key=True)
    access_token = models.TextField(blank=True, default="")
    # The token the tunnel actually uses: the access token, or the one obtained by
    # provisioning (serial + MAC) when the access token is empty.
    local_token = models.TextField(blank=True, default="")
    # The VMS's id for this camera, read from access_token on save; kept as a column so
    # lookups by camid are an index hit and duplicates are refused by the database.
    camid = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)
    # The camid of the token provisioning gave (serial + MAC), for lookups by the VMS's id
    # of a camera that has no access token. Not unique: the relay decides it.
    provisioned_camid = models.BigIntegerField(null=True, blank=True, db_index=True, editable=False)
    ip = models.CharField(max_length=255)
    http_port = models.PositiveIntegerField(default=80)
    rtsp_port = models.PositiveIntegerField(default=554)
    # A person's switch: False means "no tunnel for this camera, on purpose". Not the
    # reference's `is_active`, which its gateway reports (see the property below).
    enabled = models.BooleanField(default=True)
    serial = models.CharField(max_length=255, null=True, blank=True)
    mac = models.CharField(max_length=255, null=True, blank=True)
    rtsp_only = models.BooleanField(default=False)
    username = models.CharField(max_length=255, blank=True, default="")
    # Stored as given: the gateway has to present it to the camera, so it cannot be
    # hashed. The database lives in the data directory with owner-only permissions.
    password = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["camera_id"]

    def __str__(self) -> str:
        return f"camera {self.camera_id} ({self.ip})"

    def save(self, *args, update_fields=None, **kwargs):
        # The columns that follow from the access token: its camid, and the token the
        # tunnel uses. A token given is the tunnel's; a token cleared by an update clears
        # what came from it (the agent then provisions by serial and MAC and records it).
        if update_fields is None or "access_token" in update_fields:
            self.camid = try_decode_camid(self.access_token)
            if self.access_token or update_fields is not None:
                self.local_token, self.provisioned_camid = self.access_token, None
            if update_fields is not None:
                update_fields = {*update_fields, "camid", "local_token", "provisioned_camid"}
        super().save(*args, update_fields=update_fields, **kwargs)

    @property
    def status(self) -> "TunnelStatus | None":
        try:
            return self.tunnel_status
        except TunnelStatus.DoesNotExist:
            return None

    @property
    def is_active(self) -> bool:
        """The reference's `is_active`: true while the camera's tunnel runs. Its cloud
        adds every camera with `is_active: false` and its gateway reports true once the
        tunnel process is up, like `pid`."""
        return self.pid is not None

    @property
    def pid(self) -> int | None:
        """The OS process serving this camera's tunnel while it is up, else None."""
        status = self.status
        return status.pid if status and status.state == TunnelState.UP else None


class TunnelStatus(models.Model):
    """What the agent reports about one tunnel: a camera's, or the gateway's own."""

    key = models.CharField(max_length=64, unique=True)
    camera = models.OneToOneField(
        Camera, null=True, blank=True, on_delete=models.CASCADE, related_name="tunnel_status"
    )
    state = models.CharField(max_length=16, choices=TunnelState.choices(), default=TunnelState.STOPPED)
    reason = models.TextField(blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    endpoints = models.JSONField(default=list, blank=True)
    open_connections = models.PositiveIntegerField(default=0)
    bytes_to_cloud = models.BigIntegerField(default=0)
    bytes_from_cloud = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.state}"

    def as_dict(self) -> dict:
        return {
            "state": self.state,
            "reason": self.reason,
            "endpoints": self.endpoints,
            "open_connections": self.open_connections,
            "bytes_to_cloud": self.bytes_to_cloud,
            "bytes_from_cloud": self.bytes_from_cloud,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }
