"""The item bank: items, tags, provenance, exposure and history in one DuckDB file."""
