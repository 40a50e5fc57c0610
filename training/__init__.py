"""training — see design.md."""
