"""One module per `sgcd` subcommand; each exposes register(subparsers) (see sgcd.cli)."""
