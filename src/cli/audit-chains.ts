// `gatehouse audit chains` and `gatehouse audit retire NAME --reason TEXT`: which gateways' chains
// make up the trail over a shared store, and retiring a gone gateway's once its trail is exported
// (GET /v1/audit/chains, POST /v1/audit/chains/:name/retire).
import { structured } from './output.js';
import type { ChainEntry } from '../store/index.js';
import { call, type Target } from './client/api.js';
import { accessToken } from './client/session.js';
import { UsageError } from './fail.js';
import { printLine } from './safe-text.js';
import { table } from './table.js';

/** The answer's chain: the registry's own type (type-only, so nothing of the store is loaded here). */
type Chain = ChainEntry;

const NOTE: Record<Chain['state'], string> = {
  live: 'asked by every merged question',
  gone: 'not running: missing from merged answers until started again or retired',
  retired: '',
};

export async function listChains(target: Target, json: boolean): Promise<number> {
  const { chains } = await call<{ chains: Chain[] }>(target, 'GET', '/v1/audit/chains', { token: await accessToken(target) });
  if (json) printLine(structured(chains));
  else
    printLine(
      table(
        ['GATEWAY', 'STATE', 'LAST SEEN', 'NOTE'],
        chains.map((c) => [c.name, c.state, c.last_seen, c.retired ? `retired by ${c.retired.by} at ${c.retired.at}: ${c.retired.reason}` : NOTE[c.state]]),
      ),
    );
  return 0;
}

export async function retireChain(target: Target, args: string[], reason: string | undefined, json: boolean): Promise<number> {
  if (args.length !== 1) throw new UsageError('audit retire takes one gateway name (as `gatehouse audit chains` lists it), e.g. audit retire 10.0.0.7:8443 --reason "..."');
  if (reason === undefined || reason.trim().length < 3) throw new UsageError('audit retire needs --reason TEXT (kept with the chain and in the trail): why, and where its trail was exported to');
  const chain = await call<Chain>(target, 'POST', `/v1/audit/chains/${encodeURIComponent(args[0]!)}/retire`, { token: await accessToken(target), body: { reason } });
  if (json) printLine(structured(chain));
  else printLine(`retired ${chain.name}: merged audit answers no longer name it as missing; its retirement is in the trail (audit.chain_retire)`);
  return 0;
}
