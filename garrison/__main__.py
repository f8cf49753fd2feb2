"""`python -m garrison` runs the CLI."""

from garrison.cli import main

main()
