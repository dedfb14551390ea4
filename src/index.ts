// `bits-upload`: the server, its configuration, its errors and the types a hook is written against.
// The client is `bits-upload/client`, the wire codecs `bits-upload/protocol`, the storage seams
// `bits-upload/store` (and their compliance suite, `bits-upload/store/testing`).
export { BitsServer } from './server/bits-server.js';
export type { BitsServerOptions } from './server/server-options.js';
export type { SessionEvents, Sessions } from './server/sessions.js';
// (start() and listen() refuse a state directory another live server holds)
export { StateDirInUseError } from './store/fs/state-dir-lock.js';
export { ConfigError, loadConfigFile, parseConfig, parseConfigJson, readConfigFile } from './server/config.js';
export type { AuthConfig, ConfigFile, ConfigIssue, PostgresConfig, S3Config, ServerConfig, ServerConfigInput, StoreConfig, VdirConfig } from './server/config.js';
// (`bits serve --check`)
export { checkStores } from './server/check-stores.js';
export type { StoreCheck } from './server/check-stores.js';
export { BitsError, ERRORS, isBitsError } from './protocol/errors.js';
export type { BitsErrorCode } from './protocol/errors.js';
export { HTTP_ERRORS, HttpError, isHttpError } from './http/errors.js';
export type { HeadError, HttpErrorCode } from './http/errors.js';
export type { BadRequestHandler } from './http/connection.js';
export { NotificationError } from './server/notification/notification-error.js';
export type { CompletedUpload, UploadCompleteHook, UploadCompleteResult, UploadReply } from './server/notification/hook.js';
// Create-Session and commit hooks, in-process and HTTP (a receiver checks a delivery's signature with verifyWebhookSignature).
export type { CommittedUpload, SessionCreateDecision, SessionCreateHook, SessionCreateRequest, UploadCommittedHook, VdirHooks } from './server/hooks/types.js';
export { verifyWebhookSignature } from './server/hooks/webhook.js';
export type { WebhookConfig } from './server/config-schema.js';
export type { AuthDecision, AuthenticateHook, AuthHookResult, Principal } from './server/auth/authenticator.js';
// Mounted mode: the same handler under node:http or express.
export { createNodeHttpHandler } from './http/node-adapter.js';
export type { NodeHttpHandlerOptions } from './http/node-adapter.js';
export type { HttpHandler, HttpRequest, HttpResponse } from './http/types.js';
