import { defineConfig } from 'vitest/config';

// Two projects: unit tests sit beside their source and use no real processes;
// integration tests under test/ start real containerd, registries and API servers.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['agent/**/*.test.ts', 'controller/**/*.test.ts', 'proto/**/*.test.ts', 'bin/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // Real runtimes and registries are shared per file; files run one at a time on a 2-core machine.
          fileParallelism: false,
          // The address agents listen on when the controller must find them in an EndpointSlice.
          globalSetup: ['test/support/agent-net-setup.ts'],
        },
      },
    ],
  },
});
