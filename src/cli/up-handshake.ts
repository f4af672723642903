// How `up` starts its children early: each is forked at once and loads its code (the gateway's
// ~1300 modules, the engine's, the SSO provider's) while `up` makes the certificates and the demo
// data, and while the gateway waits for the ports of the engine and the provider. A child reads its
// configuration (and so validates every key, as alone) only after `up` says go, with the
// environment the go adds (those ports). Run alone, a service does not wait.
import type { ChildProcess } from 'node:child_process';

/** Set in a child's environment by `up`: wait for the go message before reading the configuration. */
export const WAIT_FOR_GO = 'GATEHOUSE_UP_WAIT_FOR_GO';

export interface GoMessage {
  type: 'go';
  /** Added to the child's environment before it reads its configuration (GATEHOUSE_ENGINE_PORT, ...). */
  env: Record<string, string>;
}

/** In a child: resolves at once when run alone; under `up`, when its go arrives (and applies its env). */
export function goFromParent(): Promise<void> {
  if (process.env[WAIT_FOR_GO] !== '1' || !process.send) return Promise.resolve();
  return new Promise((resolve) => {
    const onMessage = (m: GoMessage) => {
      if (m?.type !== 'go') return;
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      delete process.env[WAIT_FOR_GO];
      Object.assign(process.env, m.env);
      resolve();
    };
    // `up` ended before it said go (a certificate it could not make, a signal): nothing to start for.
    const onDisconnect = () => process.exit(1);
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
  });
}

/** In `up`: lets a waiting child go on. False when the child is gone already (its exit is reported elsewhere). */
export function sendGo(child: ChildProcess, env: Record<string, string>): boolean {
  if (!child.connected) return false;
  const message: GoMessage = { type: 'go', env };
  child.send(message, () => {}); // an error here is the child's end, which its exit handler reports
  return true;
}
