"""``python -m gnasim``: the command line."""

from gnasim.cli import main

if __name__ == "__main__":
    main()
