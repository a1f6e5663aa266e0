// Test PKI for the agent's mutual TLS: a CA, a server and a client certificate it issues, a second
// client certificate from the same CA that names someone other than the controller (the agent must
// refuse it: PERMISSION_DENIED), and a foreign CA with a client certificate the agent must refuse at
// the handshake. ECDSA P-256, PEM files in one directory.
import { webcrypto } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface CertificateOptions {
  /**
   * Extra DNS names or IP addresses for the server certificate. Always in: 127.0.0.1, ::1,
   * localhost, the run's agent address (simulated agents listen there and are dialled by
   * address: support/endpoint-slices.ts), and stoker-agent, the name the chart's controller checks
   * with --agent-server-name.
   */
  serverNames?: readonly string[];
  /** Common name of the client certificate; default `stoker-controller`. */
  clientName?: string;
  /** Common name of the other client certificate from the same CA; default `stoker-intruder`. */
  otherClientName?: string;
  /** Subject alternative names of the other client certificate: DNS names, or `uri:` + a URI. */
  otherClientSans?: readonly string[];
}

/** Paths of the PEM files written; every file also has its content under the same key plus `Pem`. */
export interface Certificates {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Same CA as the client certificate, another name. */
  otherClientCert: string;
  otherClientKey: string;
  foreignCaCert: string;
  foreignClientCert: string;
  foreignClientKey: string;
  caCertPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clientCertPem: string;
  clientKeyPem: string;
  otherClientCertPem: string;
  otherClientKeyPem: string;
  foreignCaCertPem: string;
  foreignClientCertPem: string;
  foreignClientKeyPem: string;
}

interface Issued {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - DAY_MS), notAfter: new Date(now + 30 * DAY_MS) };
}

async function makeCa(name: string): Promise<Issued> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${name}`,
    keys,
    signingAlgorithm: ALG,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, keys };
}

async function issue(ca: Issued, commonName: string, usage: 'server' | 'client', names: readonly string[] = []): Promise<Issued> {
  const keys = await newKeys();
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
  ];
  if (names.length > 0) {
    extensions.push(
      new x509.SubjectAlternativeNameExtension(
        names.map((n) => (n.startsWith('uri:') ? { type: 'url' as const, value: n.slice(4) } : { type: isIP(n) ? ('ip' as const) : ('dns' as const), value: n })),
      ),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${commonName}`,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ALG,
    ...validity(),
    extensions,
  });
  return { cert, keys };
}

async function keyPem(keys: CryptoKeyPair): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

/** Creates the CAs and certificates and writes them as PEM files (0600 for keys) into `dir`. */
export async function makeCertificates(dir: string, opts: CertificateOptions = {}): Promise<Certificates> {
  await mkdir(dir, { recursive: true });
  const ca = await makeCa('stoker-test-ca');
  const foreignCa = await makeCa('stoker-foreign-ca');
  // The agents' own address, where the run has one (support/endpoint-slices.ts agentAddress()).
  const own = process.env.STOKER_AGENT_ADDRESS ? [process.env.STOKER_AGENT_ADDRESS] : [];
  const serverNames = [...new Set(['127.0.0.1', '::1', 'localhost', ...own, 'stoker-agent', ...(opts.serverNames ?? [])])];
  const server = await issue(ca, 'stoker-agent', 'server', serverNames);
  const client = await issue(ca, opts.clientName ?? 'stoker-controller', 'client');
  const otherClient = await issue(ca, opts.otherClientName ?? 'stoker-intruder', 'client', opts.otherClientSans);
  const foreignClient = await issue(foreignCa, opts.clientName ?? 'stoker-controller', 'client');

  const pems = {
    caCert: ca.cert.toString('pem'),
    caKey: await keyPem(ca.keys),
    serverCert: server.cert.toString('pem'),
    serverKey: await keyPem(server.keys),
    clientCert: client.cert.toString('pem'),
    clientKey: await keyPem(client.keys),
    otherClientCert: otherClient.cert.toString('pem'),
    otherClientKey: await keyPem(otherClient.keys),
    foreignCaCert: foreignCa.cert.toString('pem'),
    foreignClientCert: foreignClient.cert.toString('pem'),
    foreignClientKey: await keyPem(foreignClient.keys),
  };
  const files = {
    caCert: 'ca.crt',
    caKey: 'ca.key',
    serverCert: 'server.crt',
    serverKey: 'server.key',
    clientCert: 'client.crt',
    clientKey: 'client.key',
    otherClientCert: 'other-client.crt',
    otherClientKey: 'other-client.key',
    foreignCaCert: 'foreign-ca.crt',
    foreignClientCert: 'foreign-client.crt',
    foreignClientKey: 'foreign-client.key',
  } as const;
  for (const [key, file] of Object.entries(files) as [keyof typeof files, string][]) {
    await writeFile(join(dir, file), `${pems[key].trim()}\n`, { mode: file.endsWith('.key') ? 0o600 : 0o644 });
  }
  const path = (key: keyof typeof files): string => join(dir, files[key]);
  return {
    dir,
    caCert: path('caCert'),
    caKey: path('caKey'),
    serverCert: path('serverCert'),
    serverKey: path('serverKey'),
    clientCert: path('clientCert'),
    clientKey: path('clientKey'),
    otherClientCert: path('otherClientCert'),
    otherClientKey: path('otherClientKey'),
    foreignCaCert: path('foreignCaCert'),
    foreignClientCert: path('foreignClientCert'),
    foreignClientKey: path('foreignClientKey'),
    caCertPem: pems.caCert,
    serverCertPem: pems.serverCert,
    serverKeyPem: pems.serverKey,
    clientCertPem: pems.clientCert,
    clientKeyPem: pems.clientKey,
    otherClientCertPem: pems.otherClientCert,
    otherClientKeyPem: pems.otherClientKey,
    foreignCaCertPem: pems.foreignCaCert,
    foreignClientCertPem: pems.foreignClientCert,
    foreignClientKeyPem: pems.foreignClientKey,
  };
}
