import { DEFAULT_LIMITS } from '../http/limits.js';

// The defaults of every configuration key, in the units the configuration is written in (seconds,
// bytes). The schema (`config-schema.ts`) reads them, `bits serve --help` prints them, and
// test/config-defaults.test.ts checks them against the README's tables, so they are written once.

const KiB = 1024;
const MiB = 1024 * KiB;
const MINUTE = 60; // seconds
const DAY = 24 * 60 * MINUTE;

/** Defaults of the top-level keys. */
export const SERVER_DEFAULTS = {
  listen: { host: '0.0.0.0', port: 8080 },
  /** The origin clients reach the server at; null: the listener's own address. */
  publicUrl: null,
  /** No TLS: plain HTTP. */
  tls: null,
  stateDir: './data/.bits',
  logLevel: 'info',
  sweepInterval: MINUTE, // seconds between sweeps of expired sessions
  shutdownGrace: 30, // seconds requests in progress get on shutdown
  /** null: no admin listener. */
  admin: null,
} as const;

/** Defaults of the `tls` block (`cert` and `key` have none). */
export const TLS_DEFAULTS = {
  /** No CA bundle: no client certificates. */
  ca: null,
} as const;

/** Defaults of `limits`: the HTTP engine's own (`DEFAULT_LIMITS`, times there in milliseconds). */
export const LIMITS_DEFAULTS = {
  maxRequestLine: DEFAULT_LIMITS.maxRequestLine, // bytes
  maxHeaderValue: DEFAULT_LIMITS.maxHeaderValue, // bytes
  maxHeaders: DEFAULT_LIMITS.maxHeaders, // header fields
  maxHead: DEFAULT_LIMITS.maxHead, // bytes
  maxDrain: DEFAULT_LIMITS.maxDrain, // bytes
  headerTimeout: DEFAULT_LIMITS.headerTimeoutMs / 1000, // seconds
  bodyIdleTimeout: DEFAULT_LIMITS.bodyIdleTimeoutMs / 1000, // seconds
  keepAliveTimeout: DEFAULT_LIMITS.keepAliveTimeoutMs / 1000, // seconds
  writeIdleTimeout: DEFAULT_LIMITS.writeIdleTimeoutMs / 1000, // seconds
} as const;

/** Defaults of each `vdirs[]` entry (`path`, and `directory` or `destination`, have none). */
export const VDIR_DEFAULTS = {
  uploadEnabled: true,
  downloadEnabled: false,
  maximumUploadSize: 0, // bytes; 0 = unlimited (D17)
  maxFragmentSize: 32 * MiB, // bytes; 413 beyond
  sessionTimeout: 14 * DAY, // seconds (IIS BITSSessionTimeout)
  allowOverwrites: false,
  hostId: null,
  hostIdFallbackTimeout: DAY, // seconds, sent as BITS-Host-Id-Fallback-Timeout
  notificationType: 'none',
  notificationUrl: null,
  notificationTimeout: 5 * MINUTE, // seconds the application may stay silent
  maxReplySize: 64 * MiB, // bytes
  /** null: the server's `publicUrl`. */
  publicUrl: null,
  /** null: everyone, anonymously. */
  auth: null,
  sessionsPerUserLimit: 50, // live sessions per principal; 0 = no limit
  /** null: no Create-Session webhook. */
  createWebhook: null,
  /** null: no webhook after a commit. */
  commitWebhook: null,
} as const;

/** Defaults of a vdir's `createWebhook` and `commitWebhook` blocks (`url` has none). */
export const WEBHOOK_DEFAULTS = {
  /** null: deliveries are not signed. */
  secret: null,
  secretFile: null,
  timeout: 10, // seconds one attempt may take, answer included
  retries: 5, // attempts after the first, with exponential backoff
} as const;

/** Defaults of a vdir's `auth` block (`schemes` has none). */
export const AUTH_DEFAULTS = {
  realm: 'bits',
  users: null,
  allow: ['*'],
  anonymous: false,
  allowInsecureBasic: false,
  sessionCapability: false,
  certificateName: 'cn',
  keytab: null,
  servicePrincipal: null,
  stripRealm: false,
  groups: null,
  ntlmDomain: null,
} as const;

/** Defaults of the `admin` block (the admin listener is off without it). */
export const ADMIN_DEFAULTS = {
  listen: { host: '127.0.0.1', port: 9090 },
  /** null: no token (only for a listener no one else can reach). */
  token: null,
  tokenFile: null,
} as const;

/** Defaults of `store`: without it, records and bytes are files under `stateDir`. */
export const STORE_DEFAULTS = {
  records: { type: 'fs' },
  bytes: { type: 'fs' },
} as const;

/** Defaults of `store.records` of type `postgres` (`url` has none). */
export const POSTGRES_DEFAULTS = {
  /** null: `<hostname>:<pid>`. */
  node: null,
  schema: 'public',
  leaseTtl: 10, // seconds a lease outlives its holder's last heartbeat
  connectTimeout: 2, // seconds
  queryTimeout: 15, // seconds
  poolSize: 10, // connections
} as const;

/** Defaults of `store.bytes` of type `s3` (`bucket` has none). */
export const S3_DEFAULTS = {
  /** null: the AWS endpoint of the region. */
  endpoint: null,
  region: 'us-east-1',
  prefix: 'sessions/',
  forcePathStyle: false,
  partSize: 8 * MiB, // bytes, at least 5 MiB
  /** null: the SDK's standard chain (environment, shared config, instance roles). */
  credentials: null,
} as const;

/** What `bits serve` uses without `--config` where the configuration itself has no default. */
export const SERVE_DEFAULTS = {
  /** The folder served as vdir `/`. */
  root: './data/uploads',
  /** The notification type that `--notify-url` implies without `--notify-type`. */
  notifyTypeWithUrl: 'by-value',
} as const;
