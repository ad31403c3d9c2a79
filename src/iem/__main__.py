"""``python -m iem``: the same as the ``iem`` command."""

from iem._command import main

if __name__ == "__main__":
    main()
