"""server — see design.md."""
