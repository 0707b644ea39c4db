"""Kernel work for ctpanel: namespaces, cgroups, netlink, nftables, mounts, storage.

Pure Python over the stdlib, pyroute2, ctypes and Debian's command-line tools.
No Django, no Celery, no database (an import-linter contract checks it).
"""
