"""``python -m iem``: the same as the ``iem`` command."""

from iem.cli import main

if __name__ == "__main__":
    main(prog_name="iem")
