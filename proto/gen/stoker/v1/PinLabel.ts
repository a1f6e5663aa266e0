// Original file: proto/stoker/v1/agent.proto

export const PinLabel = {
  PIN_LABEL_UNSPECIFIED: 'PIN_LABEL_UNSPECIFIED',
  PIN_LABEL_SET: 'PIN_LABEL_SET',
  PIN_LABEL_UNSUPPORTED: 'PIN_LABEL_UNSUPPORTED',
  PIN_LABEL_FAILED: 'PIN_LABEL_FAILED',
} as const;

export type PinLabel =
  | 'PIN_LABEL_UNSPECIFIED'
  | 0
  | 'PIN_LABEL_SET'
  | 1
  | 'PIN_LABEL_UNSUPPORTED'
  | 2
  | 'PIN_LABEL_FAILED'
  | 3

export type PinLabel__Output = typeof PinLabel[keyof typeof PinLabel]
