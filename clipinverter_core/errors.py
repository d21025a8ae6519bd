"""Errors meant for users: each message is one line that says what is wrong and what to do."""


class CLIPInverterError(Exception):
    """Base class: the CLI prints the message alone and exits non-zero."""


class UnsafeCheckpointError(CLIPInverterError):
    """A pickle that asks for code to run; it was refused before anything ran."""


class CheckpointError(CLIPInverterError):
    """A file that is truncated, of another format, or whose keys or shapes do not fit."""


class InputError(CLIPInverterError):
    """An image, text or batch the pipeline cannot take."""


class DownloadError(CLIPInverterError):
    """A download that failed or brought the wrong thing; nothing was left under the final name."""


class DataError(CLIPInverterError):
    """A training data set that is incomplete or unreadable: the message names the file."""
