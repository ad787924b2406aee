"""Fuzz targets for the parsers that read untrusted input; see README.md here."""
