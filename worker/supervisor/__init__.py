"""The node supervisor: parent (subreaper) of every VPS init, keeper of console ptys.

See docs/supervisor.md for the design and the socket protocol.
"""
