"""``python -m ktstr.cli``."""

from ktstr.cli import main

main()
