"""The browser console of a VPS: tickets, the page, the WebSocket and the session log (docs/console.md).

Its own small app (label `console`) inside the vps layer, with migrations of its own.
"""
