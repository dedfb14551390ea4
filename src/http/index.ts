// The engine as its users see it: the server and its options, the request/response types, the
// limits, and the errors a handler or a log reader meets. Parsing and framing stay internal.
export { HttpServer } from './server.js';
export type { HttpServerOptions } from './server.js';
export type { HttpHandler, HttpRequest, HttpResponse, ResponseHeaders } from './types.js';
export { DEFAULT_LIMITS } from './limits.js';
export type { HttpLimits } from './limits.js';
export { HTTP_ERRORS, HttpError, isHttpError } from './errors.js';
export type { HeadError, HeadErrorCode, HttpErrorCode } from './errors.js';
export { ChunkedBodyError } from './chunked-decoder.js';
export type { BadRequestHandler } from './connection.js';
export { createNodeHttpHandler } from './node-adapter.js';
export type { NodeHttpHandlerOptions } from './node-adapter.js';
