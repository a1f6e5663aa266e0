// Mutual TLS for the agent's gRPC server: its own certificate and key, and the CA that client
// certificates must chain to. A client without a certificate, or with one from another CA, fails
// the TLS handshake and never reaches a handler.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { AGENT_FLAGS, ConfigError, type AgentConfig } from '../config.js';

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
    throw new ConfigError({ flag, value: file }, `cannot be read: ${code}`);
  }
}

function certificates(flag: string, file: string, pem: Buffer): X509Certificate[] {
  const blocks = pem.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError({ flag, value: file }, 'holds no PEM certificate');
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch {
      throw new ConfigError({ flag, value: file }, 'holds a certificate that cannot be parsed');
    }
  });
}

/** Reads and checks the three TLS files; errors name the flag and the file. */
export async function loadTlsMaterial(config: Pick<AgentConfig, 'tlsCertFile' | 'tlsPrivateKeyFile' | 'clientCaFile'>): Promise<TlsMaterial> {
  const certFlag = AGENT_FLAGS.tlsCertFile.flag;
  const keyFlag = AGENT_FLAGS.tlsPrivateKeyFile.flag;
  const caFlag = AGENT_FLAGS.clientCaFile.flag;
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
    throw new ConfigError({ flag: keyFlag, value: config.tlsPrivateKeyFile }, 'holds no usable PEM private key');
  }
  if (!leaf?.checkPrivateKey(privateKey)) {
    throw new ConfigError(
      { flag: keyFlag, value: config.tlsPrivateKeyFile },
      `is not the key of the certificate in ${certFlag} ${JSON.stringify(config.tlsCertFile)}`,
    );
  }
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() < Date.now()) {
    throw new ConfigError({ flag: certFlag, value: config.tlsCertFile }, `expired on ${notAfter.toISOString()}`);
  }
  return { cert, key, clientCa, subject: leaf.subject.replace(/\n/g, ', '), notAfter: notAfter.toISOString() };
}

function sameMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  return a.cert.equals(b.cert) && a.key.equals(b.key) && a.clientCa.equals(b.clientCa);
}

type TlsFiles = Pick<AgentConfig, 'tlsCertFile' | 'tlsPrivateKeyFile' | 'clientCaFile'>;

/**
 * Hands grpc-js the agent's certificate, key and client CA, re-reading the files every interval
 * (cert-manager and Secret volumes rotate them in place). A new set is used only once it checks
 * out (the key matches the certificate, nothing expired); a half-written or broken set is logged
 * and the current one kept.
 */
export class ReloadingTlsProvider implements grpc.experimental.CertificateProvider {
  private readonly caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing = false;

  constructor(
    private readonly files: TlsFiles,
    private current: TlsMaterial,
    private readonly intervalMs: number,
    private readonly onReload: (tls: TlsMaterial) => void = () => undefined,
    private readonly onError: (message: string) => void = () => undefined,
  ) {}

  get material(): TlsMaterial {
    return this.current;
  }

  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => listener({ caCertificate: this.current.clientCa }));
    this.startWatching();
  }

  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
    this.maybeStopWatching();
  }

  addIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => listener({ certificate: this.current.cert, privateKey: this.current.key }));
    this.startWatching();
  }

  removeIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
    this.maybeStopWatching();
  }

  /** Re-reads the files now; resolves true when a new, valid set was taken. */
  async refresh(): Promise<boolean> {
    if (this.refreshing) return false;
    this.refreshing = true;
    try {
      const next = await loadTlsMaterial(this.files);
      if (sameMaterial(next, this.current)) return false;
      this.current = next;
      for (const l of this.identityListeners) l({ certificate: next.cert, privateKey: next.key });
      for (const l of this.caListeners) l({ caCertificate: next.clientCa });
      this.onReload(next);
      return true;
    } catch (err) {
      this.onError(err instanceof Error ? err.message : String(err));
      return false;
    } finally {
      this.refreshing = false;
    }
  }

  /** Stops re-reading the files. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private startWatching(): void {
    if (this.timer || this.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.refresh(), this.intervalMs);
    this.timer.unref();
  }

  private maybeStopWatching(): void {
    if (this.caListeners.size === 0 && this.identityListeners.size === 0) this.close();
  }
}

/** Server credentials that demand a client certificate signed by the client CA. */
export function serverCredentials(provider: ReloadingTlsProvider): grpc.ServerCredentials {
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, true);
}
