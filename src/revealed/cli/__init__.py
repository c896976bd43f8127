"""The `revealed` command-line interface (Typer + Rich)."""
