"""Exceptions that carry a message meant for the person using the tool."""


class UserInputError(ValueError):
    """Bad input from the user: the message says what is wrong and what to do.

    The CLI prints it as one line and exits non-zero; the widgets show it as a napari
    notification. Anything else escaping the core is a bug.
    """


class ModelFileError(UserInputError):
    """A file that is not a usable napari-unet model."""


class TrainingFailed(UserInputError):
    """Training produced nothing usable (the loss was not a finite number before the
    first epoch ended); the model is left as it was."""
