"""The launcher's screens: launch, run, history, compare, and the quit confirmation."""
