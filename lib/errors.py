"""The one exception type a user can act on."""


class ReprolabError(Exception):
    """An error the user can fix, in one line that names the bad key, file or value; entry points print it
    without a traceback and exit non-zero."""
