"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class GanscopeError(Exception):
    """A problem with the user's input that they can fix; the message says what and how."""


class ConfigError(GanscopeError):
    """An invalid configuration key, name or value."""


class DataError(GanscopeError):
    """Data that cannot be used: missing file, wrong shape, NaN, too few points."""


class CheckpointError(GanscopeError):
    """A run folder or checkpoint that is missing, incomplete or corrupt."""


class OutputError(GanscopeError):
    """An output path that cannot be written: a file where a folder must go, or the reverse."""
