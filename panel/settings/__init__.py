"""Settings modules: base (shared), dev (quickstart), test, prod (behind TLS)."""
