"""The one exception type a user can act on."""


class ReprolabError(Exception):
    """An error the user can fix: bad params, missing or malformed data, an unreachable server.

    Its message is a single line that names the bad key, file or value. Entry points print it
    without a traceback and exit non-zero.
    """
