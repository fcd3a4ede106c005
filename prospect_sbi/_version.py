"""The package version, in a module of its own so every stage can read it."""

__all__ = ["__version__"]

__version__ = "0.2.0"
