"""JSON schemas of the request models, as the OpenAPI document shows them."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import core_schema

REF = "#/components/schemas/{model}"


class CompactSchema(GenerateJsonSchema):
    """No titles; an optional plain type as `type: [kind, "null"]`."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def typed_dict_schema(self, schema: core_schema.TypedDictSchema) -> JsonSchemaValue:
        out = super().typed_dict_schema(schema)
        out.pop("title", None)
        return out

    def nullable_schema(self, schema: core_schema.NullableSchema) -> JsonSchemaValue:
        inner = self.generate_inner(schema["schema"])
        if isinstance(inner.get("type"), str) and not {"const", "enum", "$ref"} & set(inner):
            return {**inner, "type": [inner["type"], "null"]}
        return super().nullable_schema(schema)


def component_schemas(*models: type[Any]) -> dict[str, Any]:
    """Every model and the models it refers to, by class name."""
    mode: JsonSchemaMode = "validation"
    adapters = [(m.__name__, mode, TypeAdapter[Any](m)) for m in models]
    _, found = TypeAdapter.json_schemas(adapters, ref_template=REF, schema_generator=CompactSchema)
    return dict(found.get("$defs", {}))
