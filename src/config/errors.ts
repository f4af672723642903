/** A configuration problem: the message names the key (or file) and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'invalid_config';
}
