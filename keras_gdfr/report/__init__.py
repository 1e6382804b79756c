"""Reading runs back: the Markdown report (`gdfr report`), feature maps (`gdfr viz`), sweeps (`gdfr sweep`).

Submodules import matplotlib and keras only where they need them, so importing
this package (and the CLI) stays fast.
"""
