"""The `tierwise` command line: `main` builds the app from one module per command group;
each command stays thin over the library."""

from tierwise.cli.main import app, main

__all__ = ["app", "main"]
