export * from './constants.js';
export * from './hresult.js';
export * from './errors.js';
export * from './content-range.js';
export * from './packet.js';
export * from './ack.js';
export * from './session-id.js';
