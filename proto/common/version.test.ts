import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { STOKER_VERSION } from './version.js';

// The version is written in three places: the bundled binaries cannot read package.json at run
// time, and Helm reads only Chart.yaml. This test keeps them in step.
describe('STOKER_VERSION', () => {
  const read = (path: string): Promise<string> => readFile(new URL(`../../${path}`, import.meta.url), 'utf8');

  it('is the version in package.json', async () => {
    const pkg = JSON.parse(await read('package.json')) as { version?: unknown };
    expect(pkg.version).toBe(STOKER_VERSION);
  });

  it("is the Helm chart's version and appVersion", async () => {
    const chart = parse(await read('deploy/helm/stoker/Chart.yaml')) as { version?: unknown; appVersion?: unknown };
    expect({ version: chart.version, appVersion: chart.appVersion }).toEqual({ version: STOKER_VERSION, appVersion: STOKER_VERSION });
  });
});
