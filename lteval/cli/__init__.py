"""Command-line programs: the application layer, free to call every other layer."""
