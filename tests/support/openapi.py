"""Checking real API answers against the OpenAPI 3.0 schema that /api/schema/ serves.

OpenAPI 3.0's Schema Object is almost JSON Schema; ``response_validator`` bridges the
difference, so plain ``jsonschema`` can do the checking:

- ``$ref``s into ``components`` are inlined;
- ``nullable: true`` becomes a ``type`` union with ``"null"`` (and ``null`` joins an
  ``enum``). In 3.0.3, ``nullable`` only counts beside a ``type``: a nullable schema
  without one (e.g. ``allOf: [{$ref}]`` plus ``nullable``) admits no null at all, so it
  is refused here rather than guessed;
- a ``writeOnly`` property is dropped from responses, and an object that lists its
  properties admits no others: a response with an undocumented key (a leaked password,
  ``local_token`` where it does not belong) fails.

A binary answer (a snapshot's ``image/jpeg``) is checked by its content type and its
first bytes.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

REF_PREFIX = "#/components/schemas/"
OPENAPI_ONLY = ("nullable", "readOnly", "writeOnly", "example", "discriminator", "xml", "externalDocs", "deprecated")


class SchemaProblem(AssertionError):
    pass


def to_jsonschema(node: Any, components: dict, *, direction: str = "response", at: str = "#") -> Any:
    if isinstance(node, list):
        return [to_jsonschema(item, components, direction=direction, at=f"{at}/{i}") for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith(REF_PREFIX) or ref[len(REF_PREFIX):] not in components:
            raise SchemaProblem(f"{at}: unresolvable $ref {ref!r}")
        if len(node) > 1:
            raise SchemaProblem(f"{at}: keywords beside $ref are ignored in OpenAPI 3.0: {sorted(node)}")
        return to_jsonschema(components[ref[len(REF_PREFIX):]], components, direction=direction, at=ref)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in OPENAPI_ONLY:
            continue
        if key == "properties":
            kept = {
                name: to_jsonschema(sub, components, direction=direction, at=f"{at}/properties/{name}")
                for name, sub in value.items()
                if not (direction == "response" and isinstance(sub, dict) and sub.get("writeOnly"))
            }
            out[key] = kept
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_jsonschema(value, components, direction=direction, at=f"{at}/{key}")
        elif key in ("allOf", "oneOf", "anyOf"):
            out[key] = to_jsonschema(value, components, direction=direction, at=f"{at}/{key}")
        else:
            out[key] = copy.deepcopy(value)

    if "required" in out and "properties" in out:
        out["required"] = [name for name in out["required"] if name in out["properties"]]
    if node.get("nullable"):
        if "type" not in node:
            raise SchemaProblem(f"{at}: nullable without a type admits no null in OpenAPI 3.0.3")
        out["type"] = [node["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    if direction == "response" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def response_validator(schema: dict, path: str, method: str, status: int) -> jsonschema.Validator | None:
    """A validator for the JSON body of ``status`` from ``method path`` (a path as the
    schema spells it, e.g. ``/api/camera/{camera_id}/``); None when that response is
    documented without a body. AssertionError when the response is not documented."""
    operation = schema["paths"][path][method.lower()]
    documented = operation["responses"]
    assert str(status) in documented, f"{method} {path} answered {status}, which the schema does not document ({sorted(documented)})"
    content = documented[str(status)].get("content")
    if not content:
        return None
    assert list(content) == ["application/json"], f"{method} {path} {status}: {list(content)}"
    converted = to_jsonschema(content["application/json"]["schema"], schema["components"]["schemas"])
    jsonschema.Draft7Validator.check_schema(converted)
    return jsonschema.Draft7Validator(converted, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


BINARY = {"type": "string", "format": "binary"}
MAGIC = {"image/jpeg": b"\xff\xd8\xff"}  # what a body of that type starts with


def check_response(schema: dict, path: str, method: str, status: int, content_type: str | None, body: bytes) -> None:
    """Assert that a real answer is what the schema documents for it."""
    import json

    content = schema["paths"][path][method.lower()]["responses"].get(str(status), {}).get("content", {})
    if len(content) == 1 and next(iter(content)) != "application/json":
        (media_type,) = content
        assert content[media_type]["schema"] == BINARY, f"{method} {path} {status}: {content[media_type]}"
        assert (content_type or "").split(";")[0].strip() == media_type, f"{method} {path} {status}: {content_type}"
        assert body.startswith(MAGIC.get(media_type, b"")) and body, f"{method} {path} {status}: {body[:20]!r}"
        return
    validator = response_validator(schema, path, method, status)
    if validator is None:
        assert body == b"", f"{method} {path} {status} is documented without a body, got {body[:200]!r}"
        return
    assert (content_type or "").split(";")[0].strip() == "application/json", f"{method} {path} {status}: {content_type}"
    data = json.loads(body)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    assert not errors, f"{method} {path} {status} does not match its schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors
    ) + f"\nbody: {data!r}"
