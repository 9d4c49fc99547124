"""One module per kruisectl command group; each exposes COMMANDS."""
