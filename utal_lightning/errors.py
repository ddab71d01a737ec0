"""The one error type for bad user input (data files, predictions, configs)."""


class DatasetError(ValueError):
    """Bad input on disk: the message names the file or video and what is wrong, on one line.

    The CLI prints it as ``error: <message>`` and exits non-zero, without a traceback.
    """
