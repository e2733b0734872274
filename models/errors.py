"""The one exception of the learning stage: bad input, said in one line a user can act on."""


class ModelInputError(ValueError):
    """A table, column, option or model folder that cannot be used; the message names which and why.

    Raised before anything is written, so a failed run leaves no partial model folder behind."""
