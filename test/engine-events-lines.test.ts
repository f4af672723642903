// The gateway's reader of the engine's job stream, fed by hand: a line it cannot read is not asked
// for again (a resumed stream would replay it, again and again), so the next connection starts
// afresh and the gap is caught up by the reconcile pass instead.
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { watchEngineEvents } from '../src/proxy/engine-events.js';

/** A stand-in for the engine's answer: the lines given, then held open. */
function answer(lines: object[]): IncomingMessage {
  const body = new PassThrough();
  Object.assign(body, { socket: { setTimeout: () => undefined } });
  body.write(lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  return body as unknown as IncomingMessage;
}

describe("the gateway's reader of the engine's job stream", () => {
  it('after a line of another shape, reconnects from now (no replay of that line) and reports a gap', async () => {
    const asked: ({ epoch: string; after: number } | null)[] = [];
    const gaps: number[] = [];
    const events = watchEngineEvents({
      open: async (from) => {
        asked.push(from === null ? null : { ...from });
        if (asked.length === 1) return answer([{ type: 'hello', epoch: 'e1', seq: 7, resumed: false }, { type: 'job', seq: 8, status: { id: 'x', surprise: true } }]);
        if (asked.length === 2) return answer([{ type: 'hello', epoch: 'e1', seq: 8, resumed: false }, { type: 'ping', seq: 8 }]);
        return answer([]);
      },
      onStatus: async () => undefined,
      onGap: () => gaps.push(asked.length),
      log: { warn: () => undefined, error: () => undefined },
    });
    // The second stream stays open: wait until the reader has greeted it.
    await new Promise<void>((resolve) => {
      const check = () => (gaps.length >= 2 ? resolve() : setImmediate(check));
      check();
    });
    expect(asked).toEqual([null, null]);
    expect(gaps).toEqual([1, 2]);
    await events.close();
  });
});
