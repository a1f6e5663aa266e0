import { describe, expect, it } from 'vitest';
import { createLogger } from '../proto/common/log.js';
import type { AgentConnection } from './agent-client.js';
import { nodeToken, type Warmup } from './api/types.js';
import { purge, purgeMessage, releasePlan } from './purge.js';

const log = createLogger({ name: 'test', level: 'silent' });

function warmup(name: string, spec: Warmup['spec'], extra: Partial<Warmup['metadata']> = {}, status?: Warmup['status']): Warmup {
  return { metadata: { name, namespace: 'default', uid: `uid-${name}`, ...extra }, spec, ...(status ? { status } : {}) };
}

/** Every Warmup targets the nodes in its spec.nodes.names (all of them when none). */
const ALL = ['n1', 'n2', 'n3'];
const targetsOf = (s: { nodes: { names?: string[] } | undefined }) => new Set(s.nodes?.names ?? ALL);

describe('releasePlan', () => {
  it('releases on targeted and recorded nodes, but keeps images and overlapping paths another live Warmup on that node wants', () => {
    const w = warmup('purge', { images: [{ image: 'reg.local/a:1' }, { image: 'reg.local/b:1' }], paths: [{ path: '/models/x' }], nodes: { names: ['n1'] }, onDelete: 'Purge' }, {}, {
      record: { succeeded: nodeToken('n2') },
    });
    const other = warmup('other', { images: [{ image: 'reg.local/b:1' }], paths: [{ path: '/models' }], nodes: { names: ['n2'] } });
    const deleting = warmup('going', { images: [{ image: 'reg.local/a:1' }] }, { deletionTimestamp: new Date() });
    const plan = releasePlan(w, ALL, [w, other, deleting], targetsOf);
    expect([...plan.keys()].sort()).toEqual(['n1', 'n2']);
    expect(plan.get('n1')).toEqual({ images: ['reg.local/a:1', 'reg.local/b:1'], unpinImages: [], paths: [{ path: '/models/x', include: [], exclude: [] }], keptImages: 0, keptPins: 0, keptPaths: 0 });
    // On n2 the other Warmup still wants b:1, and its /models contains /models/x.
    expect(plan.get('n2')).toEqual({ images: ['reg.local/a:1'], unpinImages: [], paths: [], keptImages: 1, keptPins: 0, keptPaths: 1 });
  });

  it('compares images in normalised form', () => {
    const w = warmup('p', { images: [{ image: 'nginx' }], onDelete: 'Purge' });
    const other = warmup('o', { images: [{ image: 'docker.io/library/nginx:latest' }] });
    expect(releasePlan(w, ['n1'], [other], targetsOf).get('n1')).toMatchObject({ images: [], keptImages: 1 });
  });

  it('pin with onDelete Keep: unpins every image but those another live pin Warmup on the node names, and removes nothing', () => {
    const w = warmup('pinned', { images: [{ image: 'reg.local/a:1' }, { image: 'reg.local/b:1' }], paths: [{ path: '/models/x' }], pin: true });
    const otherPin = warmup('other-pin', { images: [{ image: 'reg.local/a:1' }], pin: true, nodes: { names: ['n1'] } });
    const otherNoPin = warmup('other', { images: [{ image: 'reg.local/b:1' }], nodes: { names: ['n1', 'n2'] } });
    const plan = releasePlan(w, ['n1', 'n2'], [otherPin, otherNoPin], targetsOf);
    expect(plan.get('n1')).toEqual({ images: [], unpinImages: ['reg.local/b:1'], paths: [], keptImages: 0, keptPins: 1, keptPaths: 0 });
    expect(plan.get('n2')).toEqual({ images: [], unpinImages: ['reg.local/a:1', 'reg.local/b:1'], paths: [], keptImages: 0, keptPins: 0, keptPaths: 0 });
  });

  it('pin with Purge: a removed image is not unpinned first; one kept for a Warmup without pin is', () => {
    const w = warmup('p', { images: [{ image: 'reg.local/a:1' }, { image: 'reg.local/b:1' }], pin: true, onDelete: 'Purge' });
    const other = warmup('o', { images: [{ image: 'reg.local/b:1' }] });
    expect(releasePlan(w, ['n1'], [other], targetsOf).get('n1')).toEqual({ images: ['reg.local/a:1'], unpinImages: ['reg.local/b:1'], paths: [], keptImages: 1, keptPins: 0, keptPaths: 0 });
  });
});

describe('purge', () => {
  it('adds up what each agent freed, counts nodes without a live agent, and says so in the message', async () => {
    const asked: string[] = [];
    const fakeAgent = (node: string): AgentConnection => ({
      warm: () => Promise.reject(new Error('not used')),
      nodeStatus: () => Promise.reject(new Error('not used')),
      cancel: () => Promise.reject(new Error('not used')),
      release: (req) => {
        asked.push(`${node}:${(req.images ?? []).join(',')}`);
        return Promise.resolve({
          nodeName: node,
          images: (req.images ?? []).map((image) => ({ image, removed: true, sizeBytes: 1 << 20, failure: null })),
          paths: [{ path: '/models/x', files: 1, bytes: 4 << 20, residentBytesBefore: 4 << 20, residentBytesAfter: 0, failure: null }],
          unpinned: (req.unpinImages ?? []).map((image) => ({ image, unpinned: true, supported: true, failure: null })),
        });
      },
    });
    const plan = new Map([
      ['n1', { images: ['a:1'], unpinImages: [], paths: [{ path: '/models/x' }], keptImages: 0, keptPins: 0, keptPaths: 0 }],
      ['n2', { images: ['a:1'], unpinImages: ['b:1'], paths: [], keptImages: 1, keptPins: 1, keptPaths: 0 }],
      ['n3', { images: ['a:1'], unpinImages: [], paths: [], keptImages: 0, keptPins: 0, keptPaths: 0 }],
    ]);
    const agents = new Map([['n1', { endpoint: 'e1' }], ['n2', { endpoint: 'e2' }]]);
    const totals = await purge(plan, agents, (ep) => fakeAgent(ep === 'e1' ? 'n1' : 'n2'), log);
    expect(asked.sort()).toEqual(['n1:a:1', 'n2:a:1']);
    expect(totals).toEqual({ nodes: 2, unreachable: 1, imagesRemoved: 2, imagesUnpinned: 1, keptPins: 1, imageBytes: 2 << 20, pageCacheBytes: 8 << 20, keptImages: 1, keptPaths: 0, failures: 0 });
    expect(purgeMessage(totals)).toBe(
      'released on 2 node(s): removed 2 image(s) (2.0 MiB), dropped 8.0 MiB of page cache; removed the pin label from 1 image(s); kept 1 image(s) and 0 path(s) another Warmup still wants; left 1 image(s) pinned for another Warmup with pin; 1 node(s) not reached',
    );
    expect(purgeMessage({ ...totals, imagesUnpinned: 0, keptImages: 0, keptPins: 0, unreachable: 0 }, false)).toBe('released on 2 node(s); removed the pin label from 0 image(s)');
  });
});
