// The sandbox's one error type. Apart so that every file of the room can throw it without
// importing the isolation probe.
export type SandboxErrorCode = 'invalid_config' | 'unavailable' | 'uids_exhausted' | 'unsafe_path';

/** Every failure of this room, with a stable code callers branch on. */
export class SandboxError extends Error {
  constructor(
    readonly code: SandboxErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SandboxError';
  }
}
