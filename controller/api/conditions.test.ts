import { describe, expect, it } from 'vitest';
import { resumed, setCondition, type ConditionUpdate } from './conditions.js';

const T1 = '2024-01-01T00:00:00.000Z';
const T2 = '2024-01-01T00:05:00.000Z';

const suspended: ConditionUpdate = { type: 'Suspended', status: 'True', reason: 'Suspended', message: 'spec.suspend is true: no node is being warmed', lastTransitionTime: T1 };

describe('setCondition', () => {
  it('adds a condition of a new type after the others', () => {
    const failed: ConditionUpdate = { type: 'Failed', status: 'True', reason: 'NodesFailed', message: '1 of 2 node(s) failed; 1 warmed', lastTransitionTime: T2 };
    expect(setCondition([suspended], failed)).toEqual([suspended, failed]);
    expect(setCondition(undefined, failed)).toEqual([failed]);
  });

  it('replaces reason and message but keeps lastTransitionTime while the status stays the same', () => {
    const again = setCondition([suspended], { ...suspended, message: 'still suspended', lastTransitionTime: T2 });
    expect(again).toEqual([{ ...suspended, message: 'still suspended', lastTransitionTime: T1 }]);
  });

  it('moves lastTransitionTime when the status changes, and leaves the input list alone', () => {
    const list = [suspended];
    expect(setCondition(list, { ...suspended, status: 'False', lastTransitionTime: T2 })).toEqual([{ ...suspended, status: 'False', lastTransitionTime: T2 }]);
    expect(list).toEqual([suspended]);
  });
});

describe('resumed', () => {
  it('turns Suspended=True into False with reason Resumed', () => {
    expect(resumed([suspended], T2)).toEqual([{ type: 'Suspended', status: 'False', reason: 'Resumed', message: 'spec.suspend is false', lastTransitionTime: T2 }]);
  });

  it('leaves conditions without Suspended=True as they are', () => {
    const off: ConditionUpdate = { ...suspended, status: 'False', reason: 'Resumed', message: 'spec.suspend is false' };
    expect(resumed([off], T2)).toEqual([off]);
    expect(resumed(undefined, T2)).toBeUndefined();
  });
});
