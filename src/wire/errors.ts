// The error family every Gatehouse process speaks: a stable code that clients branch on,
// mapped in one place to an HTTP status and to the JSON error body of the public contract.

export const ERROR_STATUS = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  quota_exceeded: 403,
  not_found: 404,
  // A job id or output dataset that already exists.
  conflict: 409,
  payload_too_large: 413,
  // A Range that starts past the end of a partition (its size is in Content-Range: bytes */size).
  range_not_satisfiable: 416,
  // A policy folder that does not pass lint: the previous version keeps serving.
  policy_invalid: 422,
  too_many_requests: 429,
  // The device grant's own answers (RFC 8628 §3.5), which a polling client branches on.
  authorization_pending: 400,
  slow_down: 400,
  access_denied: 400,
  expired_token: 400,
  // A device code this gateway never handed out (RFC 6749 §5.2, as RFC 8628 polls answer).
  invalid_grant: 400,
  provider_unavailable: 503,
  not_ready: 503,
  audit_unavailable: 503,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** `{ error, message, ...details }`: the body of every error response. */
export interface ErrorBody {
  error: ErrorCode;
  message: string;
  [detail: string]: unknown;
}

export class GatehouseError extends Error {
  override readonly name = 'GatehouseError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  toBody(): ErrorBody {
    return { ...this.details, error: this.code, message: this.message };
  }
}
