"""Config: typed schema, YAML loading with line numbers, overrides and cross-field checks."""
