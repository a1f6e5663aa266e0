import { describe, expect, it } from 'vitest';
import { createAgentMetrics } from './metrics.js';

describe('createAgentMetrics', () => {
  it('reports warm tasks and image pulls in flight as read at scrape time', async () => {
    let pulls = 2;
    const m = createAgentMetrics({ processMetrics: false, tasksInFlight: () => 1, pullsInFlight: () => pulls });
    expect(await m.registry.metrics()).toMatch(/^stoker_image_pulls_in_flight 2$/m);
    expect(await m.registry.metrics()).toMatch(/^stoker_tasks_in_flight 1$/m);
    pulls = 0;
    expect(await m.registry.metrics()).toMatch(/^stoker_image_pulls_in_flight 0$/m);
  });

  it('counts a pulled image, its bytes and its outcome', async () => {
    const m = createAgentMetrics({ processMetrics: false, tasksInFlight: () => 0 });
    m.recordImage({ image: 'r/a:1', state: 'DONE', sizeBytes: 1000, seconds: 2 });
    m.recordImage({ image: 'r/b:1', state: 'PRESENT', sizeBytes: 5 });
    const text = await m.registry.metrics();
    expect(text).toMatch(/^stoker_image_pulls_total\{outcome="pulled"\} 1$/m);
    expect(text).toMatch(/^stoker_image_pulls_total\{outcome="present"\} 1$/m);
    expect(text).toMatch(/^stoker_image_pulled_bytes_total 1000$/m);
  });
});
