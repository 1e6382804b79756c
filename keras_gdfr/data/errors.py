"""The two ways the data layer reports a problem with a dataset source."""


class DataError(Exception):
    """A dataset source is missing, malformed or disagrees with its spec; the message names it."""


class DataWarning(UserWarning):
    """Something about the data worth knowing that does not stop loading."""
