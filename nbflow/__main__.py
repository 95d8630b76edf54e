"""``python -m nbflow`` is the ``nbflow`` command."""

from nbflow.cli import main

main()
