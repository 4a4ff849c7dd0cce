"""Errors that reach the analyst. Their message says what was found and what to do."""


class TicketTuneError(Exception):
    """An error caused by the user's input or environment, shown as one plain message."""


class DataError(TicketTuneError):
    """The uploaded tickets cannot be used as they are."""


class ConfigError(TicketTuneError):
    """A training setting is out of range or inconsistent."""


class RunNotFoundError(TicketTuneError):
    """No run with that id exists in the runs folder."""


class JobCancelledError(Exception):
    """Raised inside a training job when the user pressed Cancel."""
