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
