export * from './types.js';
export * from './limits.js';
export * from './server.js';
export * from './node-adapter.js';
export * from './content-length.js';
export * from './body-framing.js';
export { ChunkedBodyError, MAX_CHUNK_LINE } from './chunked-decoder.js';
export type { BadRequestHandler } from './connection.js';
export type { HeadError } from './request-head.js';
