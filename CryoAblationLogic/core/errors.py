"""Errors that reach the user as a clear message (exit status 2 on the command line)."""


class InputError(ValueError):
    """Invalid input: a file, a message or an action in the wrong order.

    ``key`` names the offending key or field (for case files, a dotted path such as
    ``probes[0].model``) so the message points at what to fix.
    """

    def __init__(self, key: str, reason: str):
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}" if key else reason)

    def __reduce__(self):
        # pickled as itself (its type, key and reason), so that a worker process's refusal reaches
        # the panel as the same error; by default an exception is rebuilt from its message alone
        return type(self), (self.key, self.reason)
