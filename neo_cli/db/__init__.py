"""The DuckDB side: schema, the one writer, the batch saver and read-only access."""
