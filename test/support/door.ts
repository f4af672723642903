// A TCP door in front of a service (slapd, say) that a test can shut, as an outage: while shut, new
// connections are refused at once; open, bytes pass both ways unchanged. On 127.0.0.1 only.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface Door {
  /** The door's port on 127.0.0.1, to give the client instead of the service's. */
  port: number;
  shut: boolean;
  close(): void;
}

export async function openDoor(targetHost: string, targetPort: number): Promise<Door> {
  const sockets = new Set<Socket>();
  const server: Server = createServer();
  const door: Door = {
    port: 0,
    shut: false,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
  server.on('connection', (inbound) => {
    if (door.shut) return inbound.destroy();
    const outbound = connect(targetPort, targetHost);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  door.port = (server.address() as AddressInfo).port;
  return door;
}
