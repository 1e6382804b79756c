"""`python -m launcher`: the same as `gdfr-tui`."""

from launcher.app import main

if __name__ == "__main__":
    main()
