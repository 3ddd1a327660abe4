"""One error family for everything a user can cause (bad config, missing file, bad JSONL).

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its
traceback.
"""


class ReasonloopError(Exception):
    """A problem the user can fix: the message says what and where."""


class ConfigError(ReasonloopError):
    pass


class InputError(ReasonloopError):
    pass
