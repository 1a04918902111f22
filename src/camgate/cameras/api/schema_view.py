"""GET /api/schema/: drf-spectacular's view, building the schema once per process."""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response


class SchemaView(SpectacularAPIView):
    """The schema follows from the code alone: it is served public (the same to every
    token holder) and the API has one version. Building it walks every view and
    serializer, about 20 ms of CPU, so it is built at the first request and then kept;
    a client asking again and again costs only the rendering. Only the unversioned
    schema is kept: drf-spectacular takes any ``?version=`` as it comes, and one kept
    schema per string a client makes up would be memory without bound."""

    _built: dict | None = None

    def _get_schema_response(self, request):
        version = self.api_version or request.version or self._get_version_parameter(request)
        schema = SchemaView._built if version is None else None
        if schema is None:
            generator = self.generator_class(urlconf=self.urlconf, api_version=version, patterns=self.patterns)
            schema = generator.get_schema(request=request, public=self.serve_public)
            if version is None:
                SchemaView._built = schema
        return Response(
            data=schema,
            headers={"Content-Disposition": f'inline; filename="{self._get_filename(request, version)}"'},
        )
