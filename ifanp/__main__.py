"""``python -m ifanp``: see :mod:`ifanp.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
