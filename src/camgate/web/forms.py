"""The camera form: the same rules as the REST API (camgate.cameras.validation), so a
camera the UI accepts is one the API would accept, and the other way round."""

from __future__ import annotations

from django import forms

from camgate.cameras import services, validation
from camgate.cameras.models import Camera


class PortField(forms.IntegerField):
    default_error_messages = {"invalid": "Enter a port number (1-65535)."}

    def __init__(self, **kwargs):
        # No min/max on the widget: the server's message beside the field is the one
        # every browser shows the same way (the form is novalidate).
        super().__init__(widget=forms.NumberInput(attrs={"inputmode": "numeric"}), **kwargs)

    def validate(self, value):
        super().validate(value)
        if value is not None:
            problem = validation.port_problem(value)
            if problem:
                raise forms.ValidationError(problem)


class CameraForm(forms.ModelForm):
    ip = forms.CharField(
        label="IP address or host name",
        max_length=255,
        widget=forms.TextInput(attrs={"placeholder": "192.168.1.20", "autocomplete": "off", "spellcheck": "false"}),
        help_text="The camera's address on this site's network.",
    )
    name = forms.CharField(
        label="Name", required=False, max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "Lobby entrance", "autocomplete": "off"}),
        help_text="What you call this camera (filled from its ONVIF model when found by discovery).",
    )
    http_port = PortField(label="HTTP port", initial=80)
    rtsp_port = PortField(label="RTSP port", initial=554)
    onvif_port = PortField(label="ONVIF port", required=False, help_text="Where the camera answers ONVIF.")
    rtsp_path = forms.CharField(
        label="RTSP stream path",
        required=False,
        max_length=validation.MAX_RTSP_PATH_LENGTH,
        widget=forms.TextInput(attrs={"placeholder": "/Streaming/Channels/101", "autocomplete": "off", "spellcheck": "false"}),
        help_text="The stream's path on the camera, with its query if any. Empty means /. Never a password: "
        "the camera login below is sent separately.",
    )
    access_token = forms.CharField(
        label="Access token",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        help_text="From your VMS (base64). Leave empty to provision the camera by serial and MAC.",
    )
    enabled = forms.BooleanField(
        label="Active", required=False, initial=True,
        help_text="Keep a tunnel open to the cloud for this camera. Switch off to close it on purpose.",
    )
    rtsp_only = forms.BooleanField(
        label="RTSP only", required=False, initial=False,
        help_text="Forward only the RTSP port, not HTTP.",
    )
    serial = forms.CharField(label="Serial number", required=False, max_length=255,
                             widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    mac = forms.CharField(label="MAC address", required=False, max_length=255,
                          widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    username = forms.CharField(label="Camera username", required=False, max_length=255,
                               widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))
    password = forms.CharField(
        label="Camera password",
        required=False,
        max_length=255,
        strip=False,
        # Never rendered back into the page, even after a failed submit.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_password = forms.BooleanField(label="Remove the stored password", required=False)

    class Meta:
        model = Camera
        # The password is a declared field handled by save(), not copied blindly.
        fields = ["name", "ip", "http_port", "rtsp_port", "onvif_port", "rtsp_path", "enabled", "rtsp_only",
                  "access_token", "serial", "mac", "username"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        has_password = bool(self.instance.pk and self.instance.password)
        if has_password:
            self.fields["password"].help_text = "A password is stored. Leave this empty to keep it."
        else:
            self.fields["password"].help_text = "Only if the camera needs one. It is never shown again."
            del self.fields["clear_password"]

    def clean_ip(self) -> str:
        value = self.cleaned_data["ip"]
        problem = validation.ip_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return validation.normalise_ip(value)

    def clean_rtsp_path(self) -> str:
        value = self.cleaned_data["rtsp_path"]
        problem = validation.rtsp_path_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_access_token(self) -> str:
        value = self.cleaned_data["access_token"].strip()
        problem = validation.access_token_problem(value, self.instance.pk)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def _normalise_optional(self, name: str) -> str | None:
        # The API stores null for a missing serial/MAC; an empty box means the same.
        value = self.cleaned_data.get(name)
        return value or None

    def clean_serial(self):
        return self._normalise_optional("serial")

    def clean_mac(self):
        return self._normalise_optional("mac")

    def changes(self) -> dict:
        """The values to write: every field for a new camera, the changed ones for an
        edit (so an edit from a page opened before someone else's edit keeps theirs)."""
        names = self.Meta.fields if self.instance.pk is None else [n for n in self.Meta.fields if n in self.changed_data]
        values = {name: self.cleaned_data[name] for name in names}
        # The password is write-only: a new one replaces the stored one, an empty box
        # keeps it (the form never shows it), and only the checkbox removes it.
        if self.cleaned_data.get("password"):
            values["password"] = self.cleaned_data["password"]
        elif self.cleaned_data.get("clear_password"):
            values["password"] = ""
        return values

    def save(self, commit: bool = True) -> Camera:
        if not commit:
            raise ValueError("camera forms save through camgate.cameras.services")
        if self.instance.pk is None:
            return services.create_camera(self.changes())
        return services.update_camera(self.instance, self.changes())
