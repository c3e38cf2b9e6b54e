"""``python -m specc``: the specc command line."""

from . import main

if __name__ == "__main__":
    main()
