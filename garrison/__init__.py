"""Garrison: puts a Python web app into production behind nginx and gunicorn."""

__version__ = "0.1.0"
