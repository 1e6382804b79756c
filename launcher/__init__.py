"""gdfr-tui: a terminal launcher for keras-gdfr training runs.

It browses recipes and variants, starts `gdfr train` subprocesses, and follows
their run directories (`docs/run-directory.md`); it never imports Keras itself.
"""
