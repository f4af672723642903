// Request and response schemas of the identity routes (validated by fastify, published in /openapi.json).
import Type from 'typebox';

export { EmptyBody, NoQuery } from '../../http/index.js';

export const TokenResponse = Type.Object({
  access_token: Type.String(),
  refresh_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer(),
});

export const LdapLoginBody = Type.Object(
  {
    username: Type.String({ minLength: 1, maxLength: 256 }),
    // Empty passwords are refused by the LDAP login itself (with an audit event), not by the schema.
    password: Type.String({ maxLength: 1024 }),
  },
  { additionalProperties: false },
);

export const DeviceTokenBody = Type.Object({ device_code: Type.String({ minLength: 1, maxLength: 2048 }) }, { additionalProperties: false });

export const RefreshBody = Type.Object(
  { grant_type: Type.Literal('refresh_token'), refresh_token: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false },
);

export const LogoutBody = Type.Object({ refresh_token: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })) }, { additionalProperties: false });

export const WhoamiResponse = Type.Object({
  user: Type.String(),
  groups: Type.Array(Type.String()),
  auth_method: Type.String(),
  credential: Type.String(),
  expires_at: Type.String(),
  posix_user: Type.Union([Type.String(), Type.Null()], { description: "the POSIX account Slurm jobs run as (slurm.user_attribute or slurm.user_claim at login); null: none, and the Slurm backend refuses this person's jobs" }),
});

export const CertRequestBody = Type.Object(
  {
    csr: Type.String({ minLength: 1, maxLength: 16384, description: 'PEM certificate signing request (RSA, 2048 bits or more)' }),
    ttl_s: Type.Optional(Type.Integer({ minimum: 60, description: 'a shorter lifetime than certs.client_ttl; never longer' })),
  },
  { additionalProperties: false },
);

export const CertResponse = Type.Object({ certificate: Type.String(), ca: Type.String(), expires_at: Type.String(), serial: Type.String() });

export const SerialParams = Type.Object({ serial: Type.String({ pattern: '^[0-9A-Fa-f:]{1,64}$' }) }, { additionalProperties: false });

export const CallbackQuery = Type.Object(
  {
    code: Type.Optional(Type.String({ maxLength: 2048 })),
    state: Type.Optional(Type.String({ maxLength: 512 })),
    iss: Type.Optional(Type.String({ maxLength: 2048 })),
    session_state: Type.Optional(Type.String({ maxLength: 2048 })),
    error: Type.Optional(Type.String({ maxLength: 256 })),
    error_description: Type.Optional(Type.String({ maxLength: 2048 })),
  },
  { additionalProperties: false },
);

export const LoginQuery = Type.Object({ return_to: Type.Optional(Type.String({ maxLength: 2048 })) }, { additionalProperties: false });

export const SessionResponse = Type.Object({ user: Type.String(), expires_at: Type.String({ format: 'date-time' }) });

export const MethodsResponse = Type.Object({
  ldap: Type.Boolean({ description: 'the directory form (POST /v1/auth/ldap/session) is offered' }),
  oidc: Type.Boolean({ description: 'SSO is offered: open oidc_login?return_to=... in the browser' }),
  oidc_login: Type.Optional(Type.String()),
});
