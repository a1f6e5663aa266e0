// Who may call the agent. Mutual TLS (tls.ts) proves the caller holds a certificate from the client
// CA; that is not enough when the same CA also signs other certificates (one cert-manager issuer for
// every component, say). So every call must also come with a certificate that names the controller
// (--controller-name, default `stoker-controller`, the name the chart gives the controller's
// certificate): its Subject CN, one of its DNS names or one of its URIs (SPIFFE IDs, for example)
// must equal that name exactly. Any other certificate gets PERMISSION_DENIED before a handler runs,
// for every method of the service.
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../proto/common/log.js';

/** One entry of Node's subjectaltname text: `TYPE:value`, or `TYPE:"json string"` when the value needs quoting. */
const SAN_ENTRY = /([A-Za-z ]+):(?:"((?:[^"\\]|\\.)*)"|([^,]*))(?:, |$)/y;

/**
 * The names a peer certificate carries that can identify a caller: its subject CN (or CNs), its DNS
 * names and its URIs, in that order. The subjectaltname text is read entry by entry, quoted values
 * included, so a value holding ", DNS:..." cannot smuggle in a second name; anything unreadable ends
 * the reading.
 */
export function certificateNames(cert: Pick<PeerCertificate, 'subject' | 'subjectaltname'>): string[] {
  const names: string[] = [];
  const cn = (cert.subject as { CN?: string | string[] } | undefined)?.CN;
  if (typeof cn === 'string') names.push(cn);
  else if (Array.isArray(cn)) names.push(...cn.filter((c): c is string => typeof c === 'string'));
  const san = cert.subjectaltname ?? '';
  SAN_ENTRY.lastIndex = 0;
  while (SAN_ENTRY.lastIndex < san.length) {
    const m = SAN_ENTRY.exec(san);
    if (!m) break;
    const [, type, quoted, plain] = m;
    let value = plain;
    if (quoted !== undefined) {
      try {
        value = JSON.parse(`"${quoted}"`) as string;
      } catch {
        break;
      }
    }
    if (value !== undefined && (type === 'DNS' || type === 'URI')) names.push(value);
  }
  return names;
}

/** What the agent says to a caller it does not serve. */
export function permissionDeniedMessage(name: string, presented: readonly string[]): string {
  const shown = presented.length > 0 ? presented.map((n) => JSON.stringify(n)).join(', ') : 'nothing';
  return `this agent serves only "${name}"; the client certificate names ${shown}`;
}

/**
 * A server interceptor that lets a call through only when the caller's certificate names `name`;
 * otherwise it ends the call with PERMISSION_DENIED before its metadata reaches the handler (so the
 * request is never read).
 */
export function controllerOnly(name: string, log: Logger): grpc.ServerInterceptor {
  return (method, call) => {
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const cert = call.getAuthContext().sslPeerCertificate;
        const names = cert ? certificateNames(cert) : [];
        if (names.includes(name)) {
          next(metadata);
          return;
        }
        log.warn({ method: method.path, peer: call.getPeer(), names }, 'call refused: the client certificate does not name the controller');
        call.sendStatus({ code: grpc.status.PERMISSION_DENIED, details: permissionDeniedMessage(name, names), metadata: new grpc.Metadata() });
      })
      .build();
    const responder = new grpc.ResponderBuilder().withStart((next) => next(listener)).build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
