"""The `regsync` command line (typer + rich)."""
