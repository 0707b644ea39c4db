"""Storage pools and drivers for VPS volumes: OpenVZ's two-level disk quota, snapshots, backups.

See docs/storage.md. `Storage` (volumes.py) is the entry point; drivers
(`dir`, `btrfs`, `image`) are registered by name in drivers.py.
"""
