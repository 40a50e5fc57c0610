"""engrain: the command-line front end. Nothing imports this package."""
