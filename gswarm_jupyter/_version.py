"""The package's version, alone, so the server reads it without importing the package face
(which offers the magics)."""

__version__ = "0.1.0"
