"""The `adapters` command line: one module per subcommand, all behaviour in library functions."""
