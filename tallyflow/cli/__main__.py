"""`python -m tallyflow.cli`."""

from tallyflow.cli.app import main

main()
