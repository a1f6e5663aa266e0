import { describe, expect, it } from 'vitest';
import { createControllerMetrics } from './metrics.js';

describe('createControllerMetrics', () => {
  it('reports Warmups by phase and live agents as read at scrape time', async () => {
    let running = 2;
    const m = createControllerMetrics({ processMetrics: false, phaseCounts: () => ({ Running: running, Failed: 1 }), liveAgentCount: () => 3 });
    let text = await m.registry.metrics();
    expect(text).toMatch(/^stoker_warmups\{phase="Running"\} 2$/m);
    expect(text).toMatch(/^stoker_warmups\{phase="Failed"\} 1$/m);
    expect(text).toMatch(/^stoker_warmups\{phase="Pending"\} 0$/m);
    expect(text).toMatch(/^stoker_live_agents 3$/m);
    running = 0;
    text = await m.registry.metrics();
    expect(text).toMatch(/^stoker_warmups\{phase="Running"\} 0$/m);
  });

  it('counts node tasks by outcome, reconcile errors and dispatch latency under stoker_ names', async () => {
    const m = createControllerMetrics({ processMetrics: false });
    m.nodeTasks.inc({ outcome: 'succeeded' }, 3);
    m.nodeTasks.inc({ outcome: 'failed' });
    m.reconcileErrors.inc();
    m.dispatchLatency.observe(0.02);
    const text = await m.registry.metrics();
    expect(text).toMatch(/^stoker_node_tasks_total\{outcome="succeeded"\} 3$/m);
    expect(text).toMatch(/^stoker_node_tasks_total\{outcome="failed"\} 1$/m);
    expect(text).toMatch(/^stoker_reconcile_errors_total 1$/m);
    expect(text).toMatch(/^stoker_dispatch_latency_seconds_count 1$/m);
    // Each controller has a registry of its own: two in one process do not collide.
    expect(() => createControllerMetrics({ processMetrics: false })).not.toThrow();
  });

  it('reports each Warmup by phase and whether a keepWarm Warmup is warm, as read at scrape time', async () => {
    let list = [
      { namespace: 'ml', name: 'llama', phase: 'Running' as const, warm: false },
      { namespace: 'ml', name: 'nightly', phase: 'Failed' as const },
    ];
    const m = createControllerMetrics({ processMetrics: false, warmups: () => list });
    let text = await m.registry.metrics();
    expect(text).toMatch(/^stoker_warmup_phase\{warmup_namespace="ml",warmup="llama",phase="Running"\} 1$/m);
    expect(text).toMatch(/^stoker_warmup_phase\{warmup_namespace="ml",warmup="llama",phase="Failed"\} 0$/m);
    expect(text).toMatch(/^stoker_warmup_phase\{warmup_namespace="ml",warmup="nightly",phase="Failed"\} 1$/m);
    expect(text).toMatch(/^stoker_warmup_warm\{warmup_namespace="ml",warmup="llama"\} 0$/m);
    // Only keepWarm Warmups have a warm series.
    expect(text).not.toMatch(/^stoker_warmup_warm\{[^}]*warmup="nightly"/m);
    // A deleted Warmup's series go with it; a Warmup that became warm says so.
    list = [{ namespace: 'ml', name: 'llama', phase: 'Running', warm: true }];
    text = await m.registry.metrics();
    expect(text).not.toContain('warmup="nightly"');
    expect(text).toMatch(/^stoker_warmup_warm\{warmup_namespace="ml",warmup="llama"\} 1$/m);
  });
});
