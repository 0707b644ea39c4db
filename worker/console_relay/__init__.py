"""The node's console relay: browser consoles (through the panel and Redis) to VPS ptys (docs/console.md)."""
