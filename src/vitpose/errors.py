"""Typed errors for user mistakes. The CLI turns each into one message and a non-zero exit."""

from __future__ import annotations


class VitPoseError(Exception):
    """Base class: a problem with the user's input, files or environment (not a bug)."""


class CheckpointError(VitPoseError):
    """A checkpoint file is unreadable, of an unknown format, or does not fit the model."""


class DownloadError(VitPoseError):
    """Released weights could not be fetched (offline, unknown id, ...)."""


class InputError(VitPoseError):
    """An image, video, box or annotation given by the user is unusable."""


class ConfigError(VitPoseError):
    """A config file or a --set override is invalid."""


class OutputError(VitPoseError):
    """An output cannot be written (unwritable folder, disk full, ...)."""
