"""The vm test tier: a QEMU guest with Debian's stock kernel (see docs/vm-tier.md)."""
