"""The one failure a reader reports: this file cannot become an article, and why."""


class Unreadable(Exception):
    """Why a file cannot be read as an article; the loader lists it as skipped."""
