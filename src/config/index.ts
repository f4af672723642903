// The config room's face: load and validate gatehouse.yaml with its environment overrides.
export { ConfigError } from './errors.js';
export { checkGatewayFiles, DEFAULT_CONFIG_FILE, loadConfig, type LoadedConfig, type LoadOptions, storePassword } from './load.js';
export { configReference, withReference } from './reference.js';
export { type Config, ConfigSchema } from './schema.js';
export { configKeys, type KeySpec } from './walk.js';
export { durationSeconds } from './duration.js';
export { SECRET_KEYS } from './schema.js';
export { redactSecrets } from './redact.js';
export { closest } from './closest.js';
export { readPrivateFile, SLURM_KEY_MIN_BYTES } from './private-file.js';
