"""The gateway's errors as Python exceptions.

Every error body the gateway sends is ``{"error": CODE, "message": ..., ...details}``; the exception
keeps the code, the HTTP status and the details a caller branches on (``rule`` for a policy refusal,
``limit``/``used``/``requested``/``max`` for a quota refusal), and its class says the kind, so a
notebook can ``except gatehouse.QuotaExceeded`` without reading codes.
"""

import re


class GatehouseError(Exception):
    """Any error from the gateway or on the way to it.

    code    the API's ``error`` (``not_found``, ``forbidden``, ``quota_exceeded``...), or the client's own
            (``not_logged_in``, ``unreachable``, ``untrusted``, ``changed``, ``expired_token``)
    status  the HTTP status, None when no answer came
    rule    the policy rule that decided a refusal, when the gateway names one
    limit   the quota limit a refusal hit (``max_cores``...), when it is one
    body    the whole error body
    retry_after  seconds the answer's Retry-After asks to wait before asking again (a 429), else None
    """

    def __init__(self, message, code="error", status=None, body=None, retry_after=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.body = dict(body or {})
        self.rule = self.body.get("rule")
        self.limit = self.body.get("limit")
        self.retry_after = retry_after

    def __repr__(self):
        return "%s(code=%r, status=%r, message=%r)" % (type(self).__name__, self.code, self.status, self.message)


class InvalidRequest(GatehouseError):
    """400: the request was refused as malformed; ``body.get('field')`` names the field."""


class Unauthenticated(GatehouseError):
    """401, or no usable login: run ``gatehouse.login()`` (or ``gatehouse login --sso``)."""


class Refused(GatehouseError):
    """403: policy does not allow it (``.rule`` names the deciding rule when there is one)."""


class QuotaExceeded(Refused):
    """403 quota_exceeded: ``.limit`` and ``body['used']``, ``body['requested']``, ``body['max']``."""

    @property
    def used(self):
        return self.body.get("used")

    @property
    def requested(self):
        return self.body.get("requested")

    @property
    def max(self):
        return self.body.get("max")


class NotFound(GatehouseError):
    """404: missing, or not yours to see (the gateway answers both the same)."""


class Conflict(GatehouseError):
    """409: the output exists, or the job has already ended."""


class Unreachable(GatehouseError):
    """No answer: connection refused, unknown host, untrusted certificate, time-out."""


_BY_CODE = {
    "invalid_request": InvalidRequest,
    "unauthenticated": Unauthenticated,
    "forbidden": Refused,
    "quota_exceeded": QuotaExceeded,
    "not_found": NotFound,
    "conflict": Conflict,
}
_BY_STATUS = {400: InvalidRequest, 401: Unauthenticated, 403: Refused, 404: NotFound, 409: Conflict}


def from_answer(status, body, retry_after=None):
    """The exception for an error answer: by the API's code, else by the HTTP status. retry_after: the
    answer's Retry-After header as sent; only whole seconds count (the gateway sends no dates)."""
    if not isinstance(body, dict):
        body = {}
    code = body.get("error") if isinstance(body.get("error"), str) else "http_%d" % status
    message = body.get("message") if isinstance(body.get("message"), str) else "HTTP %d" % status
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or GatehouseError
    # ASCII whole seconds only (str.isdigit() takes "²", which int() refuses), as the CLI reads it.
    seconds = int(retry_after.strip()) if retry_after and re.fullmatch(r"[0-9]{1,6}", retry_after.strip()) else None
    return cls(message, code=code, status=status, body=body, retry_after=seconds)
