"""The meetings service: everything the Azure Functions in `functions/` call into."""

__version__ = "0.1.0"
