// The image reference grammar lives in proto/common/image-reference.ts, shared with the
// controller; this re-export serves `stoker warm`'s command module until it imports it there.
export { InvalidReferenceError, parseImageReference, type ImageReference } from '../../proto/common/image-reference.js';
