// Casbin through its CommonJS build: the ES-module build is 2–2.5× slower on the same policy.
import { createRequire } from 'node:module';
import type * as CasbinModule from 'casbin';

const require = createRequire(import.meta.url);
export const casbin = require('casbin') as typeof CasbinModule;
export type Enforcer = CasbinModule.Enforcer;
