// Vitest global setup of the integration project: one address of the tests' own for every agent
// that must be found through an EndpointSlice (hack/agent-net.sh), in STOKER_AGENT_ADDRESS for the
// test workers, and gone when the run ends (or, should vitest be killed, when its process is).
import { execFileSync } from 'node:child_process';
import { hackScript } from './proc.js';

const SCRIPT = hackScript('agent-net.sh');

export default function setup(): () => void {
  const name = `stk${process.pid}`.slice(0, 10);
  const address = execFileSync('bash', [SCRIPT, 'up', name, String(process.pid)], { encoding: 'utf8' }).trim();
  process.env.STOKER_AGENT_ADDRESS = address;
  return () => {
    execFileSync('bash', [SCRIPT, 'down', name]);
  };
}
