// A followed log (GET /v1/jobs/:id/logs?follow=1) as a client holds one: resolved at the answer's
// head, its body still to come. For suites that hold many follows at once, end some, and read the rest.
import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';

export interface FollowedLog {
  status: number;
  headers: IncomingHttpHeaders;
  /** The whole body once the gateway ends it (a hung-up one is never read). */
  body: Promise<string>;
  /** Whether the body has ended. */
  ended: () => boolean;
  /** The client goes away (its place comes back to the person). */
  hangUp: () => void;
}

export function followLog(url: string, ca: string, token: string, id: string): Promise<FollowedLog> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/v1/jobs/${id}/logs?follow=1`, { ca, agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      let over = false;
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      const body = new Promise<string>((done, failed) => {
        res.on('end', () => done(text));
        res.on('error', failed);
      }).finally(() => (over = true));
      body.catch(() => undefined);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ended: () => over, hangUp: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}
