"""The `firstseen` command: a shell over the core that parses arguments and maps errors to exit codes."""
