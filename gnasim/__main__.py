"""``python -m gnasim``: the command line."""

from gnasim.console import main

if __name__ == "__main__":
    main()
