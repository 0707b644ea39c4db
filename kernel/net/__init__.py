"""VPS networking: routed (venet-like) and bridged veths, anti-spoofing, shaping, counters.

See docs/network.md. Entry point: `Network(node_config, net_config)`; register
`Network.start_hook` at the runtime's "network" stage and `Network.files_hook`
at its "files" stage, and call `Network.release(ctid)` after a stop.
"""
