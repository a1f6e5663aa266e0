// Stoker's version, reported by the CLI, the agent's /status and NodeStatus.
export const STOKER_VERSION = '0.1.0';
