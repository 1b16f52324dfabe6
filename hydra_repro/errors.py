"""The one exception type for bad input: the CLI turns it into a one-line message and exit status 2."""


class UserError(Exception):
    """Bad input from the user (argument, file, config). The message names the key or file, the value and
    what was expected; no traceback is shown for it."""


class InfeasibleError(UserError):
    """A rank-allocation request that has no valid answer (budget too small, too many stages, ...)."""


class DegenerateDataError(UserError):
    """A data set the performance model or the search cannot learn from (too few points, constant targets)."""
