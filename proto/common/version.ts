// Stoker's version, reported by the CLI, the agent's /status and NodeStatus. package.json and
// the Helm chart's Chart.yaml (version, appVersion) say the same; version.test.ts checks it.
export const STOKER_VERSION = '0.1.0';
