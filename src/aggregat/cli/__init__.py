"""Command-line interface: one thin module per command group (parse, call, print)."""
