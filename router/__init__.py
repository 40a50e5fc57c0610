"""router — see design.md."""
