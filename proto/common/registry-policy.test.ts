import { describe, expect, it } from 'vitest';
import { parseImageReference } from './image-reference.js';
import {
  BUILT_IN_RULES,
  compileRegistryPolicy,
  DEFAULT_REGISTRY_POLICY,
  parseIPv4,
  parseIPv6,
  parseRegistryPattern,
  refuseRegistry,
  registryDeniedMessage,
  RegistryPatternError,
  type RegistryPolicy,
} from './registry-policy.js';

/** The rule that refuses an image, or 'allowed'. */
function verdict(policy: RegistryPolicy, image: string): string {
  return refuseRegistry(policy, parseImageReference(image))?.rule ?? 'allowed';
}

describe('addresses as a C resolver reads them', () => {
  it.each([
    ['169.254.169.254', [169, 254, 169, 254]],
    ['2852039166', [169, 254, 169, 254]],
    ['0xa9fea9fe', [169, 254, 169, 254]],
    ['0251.0376.0251.0376', [169, 254, 169, 254]],
    ['169.254.43518', [169, 254, 169, 254]],
    ['169.16689662', [169, 254, 169, 254]],
    ['0', [0, 0, 0, 0]],
    ['127.1', [127, 0, 0, 1]],
  ])('%s is %j', (text, bytes) => expect(parseIPv4(text)).toEqual(bytes));

  it.each(['256.1.1.1', '1.2.3.4.5', '08.1.1.1', '4294967296', 'registry', '1.2.3.x', '0x', ''])('%s is not an IPv4 address', (text) =>
    expect(parseIPv4(text)).toBeUndefined(),
  );

  it.each([
    ['::', Array<number>(16).fill(0)],
    ['fe80::1', [0xfe, 0x80, ...Array<number>(13).fill(0), 1]],
    ['::ffff:a9fe:a9fe', [...Array<number>(10).fill(0), 0xff, 0xff, 169, 254, 169, 254]],
    ['1:2:3:4:5:6:7:8', [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]],
  ])('%s is an IPv6 address', (text, bytes) => expect(parseIPv6(text)).toEqual(bytes));

  it.each(['1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'fe80', ':::', '1:2:3:4:5:6:7::8'])('%s is not an IPv6 address', (text) =>
    expect(parseIPv6(text)).toBeUndefined(),
  );
});

describe('the built-in rules', () => {
  it('are the documented ones', () => {
    expect(BUILT_IN_RULES).toEqual(['169.254.0.0/16', 'fe80::/10', '0.0.0.0/8', '::/128', 'fd00:ec2::254/128', 'metadata.google.internal', 'metadata']);
  });

  it.each([
    // Link-local IPv4, every spelling a resolver accepts, any port.
    ['169.254.169.254/latest/meta-data:v1', '169.254.0.0/16'],
    ['169.254.169.254:80/x:v1', '169.254.0.0/16'],
    ['169.254.170.2:80/v2/credentials', '169.254.0.0/16'],
    ['2852039166:80/x', '169.254.0.0/16'],
    ['0xa9fea9fe:80/x', '169.254.0.0/16'],
    ['0251.0376.0251.0376:80/x', '169.254.0.0/16'],
    ['169.254.43518:80/x', '169.254.0.0/16'],
    // Link-local IPv6, and IPv6 forms that carry a link-local IPv4 address.
    ['[fe80::1]:5000/x', 'fe80::/10'],
    ['[FE80::a:b]/x', 'fe80::/10'],
    ['[febf::1]/x', 'fe80::/10'],
    ['[::ffff:a9fe:a9fe]/x', '169.254.0.0/16'],
    ['[64:ff9b::a9fe:a9fe]/x', '169.254.0.0/16'],
    // Unspecified and "this network".
    ['0.0.0.0:5000/x', '0.0.0.0/8'],
    ['0:5000/x', '0.0.0.0/8'],
    ['0.1.2.3:5000/x', '0.0.0.0/8'],
    ['[::]:5000/x', '::/128'],
    ['[::ffff:0:0]:5000/x', '0.0.0.0/8'],
    // Metadata names and addresses, any case and port.
    ['metadata.google.internal/computemetadata/v1:x', 'metadata.google.internal'],
    ['Metadata.Google.Internal:80/x', 'metadata.google.internal'],
    ['metadata:80/x', 'metadata'],
    ['METADATA/x', 'metadata'],
    ['[fd00:ec2::254]/x', 'fd00:ec2::254/128'],
  ])('%s is refused by %s', (image, rule) => expect(verdict(DEFAULT_REGISTRY_POLICY, image)).toBe(rule));

  it.each([
    'busybox',
    'docker.io/library/busybox:1.36',
    'registry.example.com:5000/team/app:v1',
    '127.0.0.1:5000/x:v1',
    'localhost:5000/x',
    '10.0.0.5:5000/x',
    '169.253.255.255:80/x',
    '169.255.0.1:80/x',
    '[fec0::1]/x',
    '[::1]:5000/x',
    '[2001:db8::1]/x',
    'metadata.google.internal.example.com/x',
    'my-metadata:80/x',
    'metadata.example.com/x',
    'registry.internal/x',
  ])('%s is allowed', (image) => expect(verdict(DEFAULT_REGISTRY_POLICY, image)).toBe('allowed'));
});

describe('operator patterns', () => {
  it.each([
    // [allow, deny, image, verdict]
    [[], ['*.example.com'], 'registry.example.com/x', '*.example.com'],
    [[], ['*.example.com'], 'a.b.example.com:5000/x', '*.example.com'],
    [[], ['*.example.com'], 'example.com/x', 'allowed'],
    [[], ['*.example.com'], 'example.org/x', 'allowed'],
    [[], ['registry.example.com'], 'Registry.Example.Com:443/x', 'registry.example.com'],
    [[], ['registry.example.com:5000'], 'registry.example.com:5000/x', 'registry.example.com:5000'],
    [[], ['registry.example.com:5000'], 'registry.example.com:5001/x', 'allowed'],
    [[], ['registry.example.com:5000'], 'registry.example.com/x', 'allowed'],
    [[], ['10.0.0.0/8'], '10.1.2.3:5000/x', '10.0.0.0/8'],
    [[], ['10.0.0.0/8'], '0x0a010203:5000/x', '10.0.0.0/8'],
    [[], ['10.0.0.0/8'], '[::ffff:a01:203]:5000/x', '10.0.0.0/8'],
    [[], ['10.0.0.0/8'], '11.0.0.1:5000/x', 'allowed'],
    [[], ['10.0.0.0/8'], 'ten.example.com/x', 'allowed'],
    [[], ['127.0.0.0/8', '[::1]'], '127.0.0.1:5000/x', '127.0.0.0/8'],
    [[], ['127.0.0.0/8', '[::1]'], '[::1]:5000/x', '[::1]'],
    [[], ['fd00::/8'], '[fd12::1]/x', 'fd00::/8'],
    [[], ['10.1.2.3:5000'], '10.1.2.3:5000/x', '10.1.2.3:5000'],
    [[], ['10.1.2.3:5000'], '10.1.2.3:5001/x', 'allowed'],
    [[], ['index.docker.io'], 'busybox', 'index.docker.io'],
    [[], ['docker.io'], 'docker.io/library/busybox', 'docker.io'],
    [[], ['*'], 'anything.example/x', '*'],
    // An allow list: what matches nothing in it is refused.
    [['registry.example.com', '*.corp.example'], [], 'registry.example.com/x', 'allowed'],
    [['registry.example.com', '*.corp.example'], [], 'eu.mirror.corp.example:5000/x', 'allowed'],
    [['registry.example.com', '*.corp.example'], [], 'ghcr.io/x', 'allow list'],
    [['registry.example.com', '*.corp.example'], [], 'busybox', 'allow list'],
    [['docker.io'], [], 'busybox', 'allowed'],
    // Deny wins over allow.
    [['*.example.com'], ['secret.example.com'], 'secret.example.com/x', 'secret.example.com'],
    [['*.example.com'], ['secret.example.com'], 'public.example.com/x', 'allowed'],
    // A built-in rule is lifted only by an allow pattern naming that very host or address.
    [['169.254.10.10:5000'], [], '169.254.10.10:5000/mirror/x', 'allowed'],
    [['169.254.10.10:5000'], [], '169.254.10.10:5001/mirror/x', '169.254.0.0/16'],
    [['169.254.10.10:5000'], [], '169.254.169.254:5000/x', '169.254.0.0/16'],
    [['*'], [], '169.254.169.254/x', '169.254.0.0/16'],
    [['169.254.0.0/16'], [], '169.254.169.254/x', '169.254.0.0/16'],
    [['*.internal'], [], 'metadata.google.internal/x', 'metadata.google.internal'],
    [['metadata'], [], 'metadata:80/x', 'allowed'],
    // ... and a deny pattern still wins over such an allow.
    [['169.254.10.10'], ['169.254.10.10'], '169.254.10.10/x', '169.254.10.10'],
  ] as [string[], string[], string, string][])('allow %j deny %j: %s -> %s', (allow, deny, image, want) => {
    expect(verdict(compileRegistryPolicy({ allow, deny }), image)).toBe(want);
  });

  it.each([
    ['', 'is empty'],
    ['   ', 'is empty'],
    ['10.0.0.0/33', 'has a prefix length that is not 0 to 32'],
    ['fd00::/129', 'has a prefix length that is not 0 to 128'],
    ['10.0.0/8', 'is not an address range'],
    ['registry.example.com/team', 'is not an address range'],
    ['registry.example.com:0', 'has a port that is not 1 to 65535'],
    ['registry.example.com:99999', 'has a port that is not 1 to 65535'],
    ['registry.example.com:http', 'is not HOST, HOST:PORT'],
    ['.example.com', 'is not a host name'],
    ['under_score.example.com', 'is not a host name'],
    ['https://registry.example.com', 'is not an address range'],
    ['[fe80::1::2]', 'is not a valid IPv6 address'],
  ])('refuses the pattern %j: %s', (pattern, words) => {
    expect(() => parseRegistryPattern(pattern)).toThrow(RegistryPatternError);
    expect(() => parseRegistryPattern(pattern)).toThrow(`registry pattern ${JSON.stringify(pattern)} ${words}`);
  });
});

describe('what a refusal says', () => {
  const messageFor = (policy: RegistryPolicy, image: string): string => {
    const refusal = refuseRegistry(policy, parseImageReference(image));
    expect(refusal).toBeDefined();
    return registryDeniedMessage(image, refusal!);
  };

  it('names the image, the registry and the built-in rule', () => {
    expect(messageFor(DEFAULT_REGISTRY_POLICY, '169.254.169.254/latest:v1')).toBe(
      'cannot pull 169.254.169.254/latest:v1: registry 169.254.169.254 is refused: it is a link-local address (built-in rule 169.254.0.0/16)',
    );
    expect(messageFor(DEFAULT_REGISTRY_POLICY, 'metadata.google.internal/x')).toBe(
      'cannot pull metadata.google.internal/x: registry metadata.google.internal is refused: it is a cloud metadata host name (built-in rule metadata.google.internal)',
    );
  });

  it('names the deny pattern, or the allow patterns none of which matched', () => {
    expect(messageFor(compileRegistryPolicy({ deny: ['*.example.com'] }), 'r.example.com/x')).toBe(
      'cannot pull r.example.com/x: registry r.example.com is refused: it matches the deny pattern "*.example.com"',
    );
    const allow = ['a.io', 'b.io', 'c.io', 'd.io', 'e.io', 'f.io', 'g.io'];
    expect(messageFor(compileRegistryPolicy({ allow }), 'ghcr.io/x')).toBe(
      'cannot pull ghcr.io/x: registry ghcr.io is refused: it matches no allow pattern ("a.io", "b.io", "c.io", "d.io", "e.io" and 2 more)',
    );
  });
});
