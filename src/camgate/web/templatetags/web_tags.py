"""Template helpers for the web UI's pages."""

from __future__ import annotations

from django import template
from django.conf import settings

from camgate.cameras.admin_bootstrap import default_password_in_use

register = template.Library()


@register.simple_tag
def gateway_name() -> str:
    return settings.GATEWAY_NAME


@register.inclusion_tag("web/_default_password_banner.html", takes_context=True)
def default_password_banner(context):
    # Only signed-in users see it: the login page must not tell strangers that
    # admin/admin works.
    request = context.get("request")
    user = getattr(request, "user", None)
    show = bool(user and user.is_authenticated and default_password_in_use())
    return {"show": show}


@register.filter
def accessible(bound_field):
    """Render a field's widget tied to its help text and errors for screen readers."""
    described_by = []
    if bound_field.help_text:
        described_by.append(f"{bound_field.auto_id}_help")
    if bound_field.errors:
        described_by.append(f"{bound_field.auto_id}_error")
    attrs = {}
    if described_by:
        attrs["aria-describedby"] = " ".join(described_by)
    if bound_field.errors:
        attrs["aria-invalid"] = "true"
    return bound_field.as_widget(attrs=attrs)
