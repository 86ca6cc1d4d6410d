"""Command-line interface: parses and prints; the library does the work."""
