"""The one error a user gets for a raw dataset folder that cannot be read as a whole."""


class DatasetLayoutError(ValueError):
    """The folder is missing, is not the dataset's layout, or holds a file that cannot be read.

    Raised before any job starts (or when a whole label file turns out unreadable); the message
    names the path that was expected and what to do about it. One bad frame never raises: it
    becomes a `RawFrame` with `problem` set.
    """
