"""Running generated code: the on-disk cache, its trust checks, the allowlist."""
