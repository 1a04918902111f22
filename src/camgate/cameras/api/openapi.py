"""Post-processing of the generated OpenAPI schema (SPECTACULAR_SETTINGS' hooks)."""

from __future__ import annotations

REF_PREFIX = "#/components/schemas/"


def _refs(node) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"][len(REF_PREFIX):]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*map(_refs, node)) if node else set()
    return set()


def require_response_properties(result, generator, request, public):
    """Mark every property of a response body as required.

    drf-spectacular lists a field as required in a response only when it is required
    on input; but the API's serializers render every field they have, always (a field
    with no value is null, never left out). Saying so lets a client rely on the keys,
    and lets the conformance tests notice a key that goes missing.
    """
    schemas = result.get("components", {}).get("schemas", {})
    request_only = set()
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                request_only |= _refs(operation["requestBody"])
    response_side = set()
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                response_side |= _refs(operation.get("responses", {}))
    for name, component in schemas.items():
        if name in request_only and name not in response_side:
            continue
        if "properties" in component:
            component["required"] = list(component["properties"])
    return result
