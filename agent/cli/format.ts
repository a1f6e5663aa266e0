// How `stoker warm` words an item's state and elapsed time, in progress lines and the summary
// table alike (byte counts: proto/common/bytes.ts).

const STATE_WORDS: Record<string, string> = {
  WAITING: 'waiting',
  RUNNING: 'pulling',
  DONE: 'done',
  PRESENT: 'present',
  FAILED: 'failed',
};

/** "RUNNING" -> "pulling"; an unknown state in lower case. */
export function stateWord(state: string): string {
  return STATE_WORDS[state] ?? state.toLowerCase();
}

/** 2.5 -> "2.5s", 125 -> "2m05s". */
export function formatSeconds(s: number): string {
  return s < 60 ? `${s.toFixed(1)}s` : `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
}
