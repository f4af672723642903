// How `up` starts its children early: each is forked at once and loads its code (the gateway's
// ~1300 modules, the engine's, the SSO provider's) while `up` loads its configuration and makes the
// certificates and the demo data. A child reads its configuration (and so validates every key, as
// alone) only after `up` says go, with the environment the go adds. All three get their go together;
// the gateway's says the ports of the engine and the provider follow: it opens its store, audit trail
// and policy meanwhile, then reads its configuration again with those ports and starts the rest (its
// backends, logins, routes). Run alone, a service does not wait.
import type { ChildProcess } from 'node:child_process';

/** Set in a child's environment by `up`: wait for the go message before reading the configuration. */
export const WAIT_FOR_GO = 'GATEHOUSE_UP_WAIT_FOR_GO';

export interface GoMessage {
  type: 'go';
  /** Added to the child's environment before it reads its configuration (GATEHOUSE_CONFIG, GATEHOUSE_ENGINE_PORT, ...). */
  env: Record<string, string>;
  /** The ports of the engine and the provider follow in a PortsMessage (the gateway's go, sent before they listen). */
  portsLater?: boolean;
  /** `up` has just made or checked the service certificates of this configuration: no need to again. */
  certificatesEnsured?: boolean;
}

/** To the gateway, once the engine and the provider listen: their ports, added to its environment. */
export interface PortsMessage {
  type: 'ports';
  env: Record<string, string>;
}

/** What the go said: with portsLater, a promise of the ports' arrival (rejected when `up` goes or a stop signal comes first). */
export interface Go {
  ports?: Promise<void>;
  /** The service certificates were checked by `up` a moment ago (run alone, a service checks them itself). */
  certificatesEnsured?: boolean;
}

/** In a child: resolves at once when run alone; under `up`, when its go arrives (and applies its env). */
export function goFromParent(): Promise<Go> {
  if (process.env[WAIT_FOR_GO] !== '1' || !process.send) return Promise.resolve({});
  return new Promise((resolve) => {
    const onMessage = (m: GoMessage) => {
      if (m?.type !== 'go') return;
      // The ports' listener is in place before the go's is removed: a message with no listener is lost.
      const ports = m.portsLater ? portsFromParent() : undefined;
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      delete process.env[WAIT_FOR_GO];
      Object.assign(process.env, m.env);
      resolve({ ...(ports ? { ports } : {}), ...(m.certificatesEnsured ? { certificatesEnsured: true } : {}) });
    };
    // `up` ended before it said go (a certificate it could not make, a signal): nothing to start for.
    const onDisconnect = () => process.exit(1);
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
  });
}

/**
 * The gateway sets up what needs no other service (certificates, store, audit trail, policy) while it
 * waits for these; a stop meanwhile (`up` gone, SIGTERM or SIGINT from `up` stopping) rejects, so what it
 * opened is closed before it exits.
 */
function portsFromParent(): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      process.off('message', onMessage);
      process.off('disconnect', onStop);
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
    };
    const onMessage = (m: PortsMessage) => {
      if (m?.type !== 'ports') return;
      done();
      Object.assign(process.env, m.env);
      resolve();
    };
    const onStop = () => {
      done();
      reject(new Error('stopped before the engine and the SSO provider listened'));
    };
    process.on('message', onMessage);
    process.on('disconnect', onStop);
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
  });
}

/** In `up`: lets a waiting child go on. False when the child is gone already (its exit is reported elsewhere). */
export function sendGo(child: ChildProcess, env: Record<string, string>, portsLater = false): boolean {
  if (!child.connected) return false;
  // Sent only after `up` has ensured the certificates (up.ts).
  const message: GoMessage = { type: 'go', env, certificatesEnsured: true, ...(portsLater ? { portsLater } : {}) };
  child.send(message, () => {}); // an error here is the child's end, which its exit handler reports
  return true;
}

/** In `up`: the gateway's ports (see PortsMessage). False when it is gone already. */
export function sendPorts(child: ChildProcess, env: Record<string, string>): boolean {
  if (!child.connected) return false;
  const message: PortsMessage = { type: 'ports', env };
  child.send(message, () => {});
  return true;
}
