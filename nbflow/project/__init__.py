"""Reading a pipeline folder: notebooks, declarations, settings, parameters. No kernel, no store."""
