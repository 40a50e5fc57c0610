"""datagen — see design.md."""
