"""Subcommands of the `aik` CLI: each module has `register(subparsers)` and a `run(args, ctx)`."""
