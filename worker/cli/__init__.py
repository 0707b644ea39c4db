"""The node's OpenVZ-style CLIs, `vzctl` and `vzlist` (docs/cli.md).

Usable without the panel, the broker or Django. Every module imports only
what its own subcommand needs, lazily: `vzctl exec` is on hot paths (scripts,
monitoring) and must cost little more than the interpreter's own start.
"""
