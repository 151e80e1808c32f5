"""User-facing errors.

Anything a person can fix (a missing folder, a wrong ``--set`` key, a mask of the wrong size) raises
``InpaintlabError`` with a message that says what was wrong and what is expected. The CLI prints it as
one line and exits with code 2; the web server turns it into a 4xx response.
"""


class InpaintlabError(Exception):
    """A problem with the user's input or set-up, described in one actionable line."""


class WeightsNotFoundError(InpaintlabError):
    """Pretrained feature-network weights were requested but no file was found."""
