// A TCP door in front of a service (slapd, say) that a test can shut, as an outage: shutting it cuts
// the connections open through it (a question asked just before is not answered after), and while
// shut new ones are refused at once; open, bytes pass both ways unchanged. On 127.0.0.1 only.
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
  let shut = false;
  const door: Door = {
    port: 0,
    get shut() {
      return shut;
    },
    set shut(value: boolean) {
      shut = value;
      if (value) for (const s of sockets) s.destroy();
    },
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
