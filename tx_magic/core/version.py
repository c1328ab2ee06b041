"""The package version, kept where every layer may read it (reports stamp it into their header)."""

__version__ = "0.1.0"
