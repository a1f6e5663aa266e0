// Original file: proto/stoker/v1/agent.proto

export const ItemState = {
  ITEM_STATE_UNSPECIFIED: 'ITEM_STATE_UNSPECIFIED',
  WAITING: 'WAITING',
  RUNNING: 'RUNNING',
  DONE: 'DONE',
  PRESENT: 'PRESENT',
  FAILED: 'FAILED',
  MISSING: 'MISSING',
} as const;

export type ItemState =
  | 'ITEM_STATE_UNSPECIFIED'
  | 0
  | 'WAITING'
  | 1
  | 'RUNNING'
  | 2
  | 'DONE'
  | 3
  | 'PRESENT'
  | 4
  | 'FAILED'
  | 5
  | 'MISSING'
  | 6

export type ItemState__Output = typeof ItemState[keyof typeof ItemState]
