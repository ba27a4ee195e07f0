"""Content's refusals beyond the common vocabulary (subgraphs.common.errors)."""

from __future__ import annotations

from subgraphs.common.errors import Conflict, HubError


class VersionConflict(Conflict):
    """The update named a version that is no longer the document's: nothing was written."""

    title = "Version conflict"


class PayloadTooLarge(HubError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    title = "Upload too large"


class UnsupportedMediaType(HubError):
    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415
    title = "Media type not allowed"
