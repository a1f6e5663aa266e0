// Original file: proto/stoker/v1/agent.proto

export const PullPolicy = {
  PULL_POLICY_UNSPECIFIED: 'PULL_POLICY_UNSPECIFIED',
  IF_NOT_PRESENT: 'IF_NOT_PRESENT',
  ALWAYS: 'ALWAYS',
} as const;

export type PullPolicy =
  | 'PULL_POLICY_UNSPECIFIED'
  | 0
  | 'IF_NOT_PRESENT'
  | 1
  | 'ALWAYS'
  | 2

export type PullPolicy__Output = typeof PullPolicy[keyof typeof PullPolicy]
