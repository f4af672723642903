// When the gateway's own certificates and the CA stop being valid: renewing them is IT's job, and
// an expired one stops every login (the gateway's) or every job (the client one the engine checks).
import { X509Certificate } from 'node:crypto';
import { Gauge, type Registry } from 'prom-client';

/** Each certificate by the name its label carries (gateway, gateway_client, ca), as PEM. */
export type NamedCertificates = Record<string, string>;

export function installCertificateMetrics(registry: Registry, certificates: NamedCertificates): void {
  const expiry = Object.entries(certificates).map(([name, pem]) => ({ name, at: Date.parse(new X509Certificate(pem).validTo) / 1000 }));
  const gauge = new Gauge({
    name: 'gatehouse_certificate_expiry_timestamp_seconds',
    help: 'When each of the gateway\'s certificates stops being valid (Unix time): gateway (its TLS server certificate), gateway_client (the one the engine accepts), ca (the CA that signs everything). Read at start-up; a renewed certificate shows after a restart.',
    labelNames: ['certificate'],
    registers: [registry],
  });
  for (const c of expiry) gauge.set({ certificate: c.name }, c.at);
}
