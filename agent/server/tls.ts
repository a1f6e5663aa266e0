// Mutual TLS for the agent's gRPC server: its own certificate and key, and the CA that client
// certificates must chain to. A client without a certificate, or with one from another CA, fails
// the TLS handshake and never reaches a handler.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { AGENT_OPTIONS, ConfigError, type AgentConfig } from '../config.js';

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly clientCa: Buffer;
  /** Subject and expiry of the server certificate, for the start-up log. */
  readonly subject: string;
  readonly notAfter: string;
}

async function readPem(flag: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`cannot read ${flag} ${JSON.stringify(file)}: ${code}`);
  }
}

function certificates(flag: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(`${flag} ${JSON.stringify(file)} holds no PEM certificate`);
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw new ConfigError(`${flag} ${JSON.stringify(file)} holds a certificate that cannot be parsed`);
    }
  });
}

/** Reads and checks the three TLS files; errors name the flag and the file. */
export async function loadTlsMaterial(config: Pick<AgentConfig, 'tlsCertFile' | 'tlsPrivateKeyFile' | 'clientCaFile'>): Promise<TlsMaterial> {
  const certFlag = AGENT_OPTIONS.tlsCertFile.flag;
  const keyFlag = AGENT_OPTIONS.tlsPrivateKeyFile.flag;
  const caFlag = AGENT_OPTIONS.clientCaFile.flag;
  const [cert, key, clientCa] = await Promise.all([
    readPem(certFlag, config.tlsCertFile),
    readPem(keyFlag, config.tlsPrivateKeyFile),
    readPem(caFlag, config.clientCaFile),
  ]);
  const [leaf] = certificates(certFlag, config.tlsCertFile, cert);
  certificates(caFlag, config.clientCaFile, clientCa);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(`${keyFlag} ${JSON.stringify(config.tlsPrivateKeyFile)} holds no usable PEM private key`);
  }
  if (!leaf?.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      `${keyFlag} ${JSON.stringify(config.tlsPrivateKeyFile)} is not the key of the certificate in ${certFlag} ${JSON.stringify(config.tlsCertFile)}`,
    );
  }
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() < Date.now()) {
    throw new ConfigError(`${certFlag} ${JSON.stringify(config.tlsCertFile)} expired on ${notAfter.toISOString()}`);
  }
  return { cert, key, clientCa, subject: leaf.subject.replace(/\n/g, ', '), notAfter: notAfter.toISOString() };
}

/** Server credentials that demand a client certificate signed by the client CA. */
export function serverCredentials(tls: TlsMaterial): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(tls.clientCa, [{ cert_chain: tls.cert, private_key: tls.key }], true);
}
