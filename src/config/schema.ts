// The configuration schema: the single source of truth for validation, defaults, the
// environment overrides and the README's configuration reference.
import Type, { type Static } from 'typebox';

const Port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });

const Host = (def: string, description: string) =>
  Type.String({ minLength: 1, default: def, description });

const Dir = (def: string, description: string) =>
  Type.String({ minLength: 1, default: def, description });

export const ConfigSchema = Type.Object(
  {
    server: Type.Object(
      {
        host: Host('127.0.0.1', 'address the gateway listens on'),
        port: Port(8443, 'HTTPS port of the gateway (0 picks a free port)'),
        hostnames: Type.Array(Type.String({ minLength: 1 }), {
          default: [],
          description: 'extra DNS names or IPs for the gateway certificate (127.0.0.1, ::1 and localhost are always in it)',
        }),
        body_limit_bytes: Type.Integer({
          minimum: 1024,
          maximum: 64 * 1024 * 1024,
          default: 1024 * 1024,
          description: 'largest request body accepted; larger ones get 413 payload_too_large',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    engine: Type.Object(
      {
        host: Host('127.0.0.1', 'address the bundled engine listens on (mTLS only)'),
        port: Port(8444, 'port of the bundled engine (0 picks a free port)'),
      },
      { additionalProperties: false, default: {} },
    ),
    policies: Type.Object(
      {
        dir: Dir('policies', 'the policy folder IT edits (model.conf, policy.csv)'),
      },
      { additionalProperties: false, default: {} },
    ),
    state: Type.Object(
      {
        dir: Dir('var', 'where the embedded store, staging and logs live'),
      },
      { additionalProperties: false, default: {} },
    ),
    store: Type.Object(
      {
        url: Type.String({
          default: '',
          description: 'empty for the embedded SQLite store (state.dir/gatehouse.db); postgres:// is not supported yet',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    certs: Type.Object(
      {
        dir: Dir('certs', 'the CA and the service certificates, created at first start'),
      },
      { additionalProperties: false, default: {} },
    ),
    log: Type.Object(
      {
        level: Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
          default: 'info',
          description: 'log level of the gateway and engine',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false, default: {} },
);

export type Config = Static<typeof ConfigSchema>;

/** Keys whose values are paths: relative ones are resolved against the config file's folder. */
export const PATH_KEYS = ['policies.dir', 'state.dir', 'certs.dir'] as const;
