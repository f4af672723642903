// Why a dataset cannot be used, with a stable code (the engine's routes map it to an HTTP error)
// and the path an administrator should look at.
export type DatasetErrorCode = 'invalid_name' | 'not_found' | 'outside_root' | 'invalid_manifest' | 'changed';

export class DatasetError extends Error {
  override readonly name = 'DatasetError';
  constructor(
    readonly code: DatasetErrorCode,
    message: string,
    readonly path: string,
  ) {
    super(message);
  }
}

/**
 * A name this process may not open (EACCES, EPERM): `not_found` to every caller as before, told
 * apart only where another reader may be allowed (the gateway asks the engine, whose user owns it).
 */
export class UnreadableError extends DatasetError {
  constructor(message: string, path: string) {
    super('not_found', message, path);
  }
}
