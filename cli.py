"""Run the gnasim command line from a checkout: ``python cli.py predict -i 30 48 80 ...``."""

from gnasim.console import main

if __name__ == "__main__":
    main()
