/** The store cannot be opened or migrated; the message says which file and why. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
}
