"""The `cnnkit` command. Each module here adds one or more sub-commands through `register(subparsers)`."""
