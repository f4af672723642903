// An answer sent before its request's body was all read (an upload refused over its allowance, or
// for its credential), to a client that asked to close the connection. Node's server closes the
// connection right after such an answer with the rest of the body still arriving; the kernel then
// resets it, and a client still writing loses the answer it was sent (EPIPE before it reads its 413).
// As RFC 9112 9.6 asks instead: the answer, then our side closed for writing, the rest of the body
// read and thrown away, and the connection closed once the client closes it, or LINGER_MS later.
// (On a connection kept alive Node already reads and drops the rest; 2e6ad37 is the gateway's own
// uploads to the engine.)
import type { IncomingMessage, ServerResponse } from 'node:http';

/** How long a refused request's rest is read and thrown away at most, before its connection is cut. */
export const LINGER_MS = 2_000;

/** Called before the answer's head goes: for an unread body on a closing connection, a close in stages. */
export function lingerAfterEarlyAnswer(req: IncomingMessage, res: ServerResponse): void {
  const socket = res.socket;
  if (req.complete || res.headersSent || res.shouldKeepAlive || socket === null) return;
  // Kept for now, so Node neither sends "Connection: close" nor destroys the socket after the answer.
  res.shouldKeepAlive = true;
  res.once('finish', () => {
    req.resume(); // what the handler left unread is read and dropped (Node does so only for a body never touched)
    socket.end();
    const cut = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('close', () => clearTimeout(cut));
  });
}
