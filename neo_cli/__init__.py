"""neo: keep a local DuckDB database of A-share market data current, at the API's limits."""

# The one place the version is written: pyproject.toml reads it from here. A constant, not an
# importlib.metadata lookup: that costs ~35 ms at start, and `neo --version` needs nothing else.
__version__ = "0.1.0"
