"""Pipeline authoring: YAML loading with source positions, includes, base pipelines, schema
and semantic validation, and compilation to a manifest."""
