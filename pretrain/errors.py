"""Errors a user can act on. Each message says what was wrong and what to do."""


class ExplorerError(Exception):
    """Base class: an expected failure with a message written for the user."""


class FitsReadError(ExplorerError):
    """A file is not a readable FITS image (empty, truncated, HTML, table, ...)."""


class BlankImageError(ExplorerError):
    """An image holds no significant emission (or no finite pixels at all)."""


class CutoutServiceError(ExplorerError):
    """The cutout service could not deliver a valid image."""


class NoNetworkError(CutoutServiceError):
    """The service could not be reached (no network, DNS failure, time-out)."""


class OutsideFootprintError(CutoutServiceError):
    """The position lies outside the FIRST survey footprint (SkyView returns a blank image)."""


class NameResolveError(CutoutServiceError):
    """An object name could not be resolved to a sky position."""


class DownloadError(ExplorerError):
    """A data set could not be downloaded or verified (network, server, checksum)."""


class DatasetNotFoundError(ExplorerError):
    """A data set is neither in a local folder nor in the cache, and may not be downloaded."""


class BundleError(ExplorerError):
    """A dataset bundle cannot be built or loaded (missing, corrupt, inconsistent)."""


class PositionError(ExplorerError, ValueError):
    """Text meant as a sky position cannot be read or is out of range."""
