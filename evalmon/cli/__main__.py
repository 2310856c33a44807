"""``python -m evalmon.cli`` = the ``evalmon`` command."""

from evalmon.cli.app import main

main()
