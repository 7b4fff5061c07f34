"""Local development and test services for the ShopStream platform.

Nothing here is deployed: the Astro Runtime image carries ``dags/``, ``include/`` and
``plugins/`` only. ``make run`` and the test fixtures start the same launchers so that what
a developer sees locally is what the tests exercise.
"""


class LocalDevError(Exception):
    """An error that the command line reports as one clear line, without a traceback.

    ``details`` (the last lines of a failed command's output, say) is for callers that show more.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details
