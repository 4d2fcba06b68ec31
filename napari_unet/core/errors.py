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


class DefaultModelMissing(ModelFileError):
    """The default model was asked for and is not installed."""


class ConfigError(UserInputError):
    """A setting out of range: ``field`` names it as the dataclass does, ``problem``
    says what is wrong (``"must be at least 1, got 0"``), so that a front end can name
    the setting its own way (the command line's ``--batch-size``)."""

    def __init__(self, field: str, problem: str, say: str | None = None) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{say or field} {problem}")
