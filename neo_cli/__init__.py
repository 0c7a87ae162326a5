"""neo: keep a local DuckDB database of A-share market data current, at the API's limits."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neo-cli")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
