"""The one exception class of MiXiN.

Anything the user can fix (a bad file, a bad flag, a missing model) raises :class:`MixinError`
with a one-line message; the command-line entry points catch it once, print it on stderr and exit
non-zero. Anything else is a bug and keeps its traceback.
"""


class MixinError(Exception):
    """A user-facing error: bad input, bad arguments, missing or unusable files."""
