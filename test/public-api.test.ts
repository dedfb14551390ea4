import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// The package is imported by its own name, as a user would import it: Node resolves a package's
// self-reference through the `exports` map of package.json, so this fails if the map is wrong.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

/**
 * The runtime names each subpath exports. A change here is a change of the public API: update the
 * list on purpose, and say so in CHANGELOG.md.
 */
const EXPORTS: Record<string, string[]> = {
  'bits-upload': [
    'BitsError',
    'BitsServer',
    'ConfigError',
    'ERRORS',
    'HTTP_ERRORS',
    'HttpError',
    'NotificationError',
    'StateDirInUseError',
    'checkStores',
    'createNodeHttpHandler',
    'isBitsError',
    'isHttpError',
    'loadConfigFile',
    'parseConfig',
    'parseConfigJson',
    'readConfigFile',
    'verifyWebhookSignature',
  ],
  'bits-upload/client': [
    'AGENT_JOB_STATES',
    'AGENT_JOB_TYPES',
    'AgentClient',
    'AgentError',
    'BitsClientError',
    'CLIENT_ERRORS',
    'DEFAULT_CANCEL_TIMEOUT_MS',
    'DEFAULT_FRAGMENT_SIZE',
    'DEFAULT_IDLE_TIMEOUT_MS',
    'DEFAULT_NO_PROGRESS_TIMEOUT_MS',
    'DEFAULT_RETRY_DELAY_MS',
    'MAX_MEMORY_REPLY',
    'MIN_FRAGMENT_SIZE',
    'PRIORITIES',
    'PasswordNeededError',
    'UnknownJobError',
    'agentSocketPath',
    'cancelJob',
    'defaultStateDir',
    'describeClientError',
    'download',
    'isBitsClientError',
    'listJobs',
    'parseRate',
    'pruneJobs',
    'resumeJob',
    'upload',
  ],
  'bits-upload/protocol': [
    'BITS_METHOD',
    'BITS_PROTOCOL_GUID',
    'BitsError',
    'ClientHResult',
    'ERRORS',
    'ErrorContext',
    'HResult',
    'Header',
    'MAX_BITS_HEADER_VALUE',
    'MAX_REPLY_URL',
    'MAX_SESSION_ID_LENGTH',
    'PacketType',
    'USER_AGENT',
    'WireHeader',
    'chooseProtocol',
    'clientHresultName',
    'errorAck',
    'errorContextName',
    'formatContentRange',
    'formatErrorContext',
    'formatHresult',
    'formatPacket',
    'formatRangeRequest',
    'fragmentRange',
    'hostIdUrl',
    'hresultName',
    'isBitsError',
    'matchReplyPath',
    'newSessionId',
    'okAck',
    'packetTypeOf',
    'parseContentRange',
    'parseHresult',
    'parsePacket',
    'parseResponseRange',
    'readAck',
    'replyUrl',
    'resolveReplyUrl',
    'sessionKey',
  ],
  'bits-upload/store': [
    'ConfinementError',
    'DestinationExistsError',
    'FsByteStore',
    'FsDestinationStore',
    'FsRecordStore',
    'InProcessClaims',
    'LeaseLostError',
    'PartialWriteError',
    'PostgresRecordStore',
    'S3ByteStore',
    'S3DestinationStore',
    'SessionLimitError',
    'StoreUnavailableError',
    'UploadMissingError',
    'createS3Client',
  ],
  'bits-upload/store/testing': [
    'TestUpload',
    'byteStoreCompliance',
    'contentOf',
    'destinationStoreCompliance',
    'localPathsCompliance',
    'readAll',
    'recordStoreCompliance',
    'remoteObjectsCompliance',
    'replyStoreCompliance',
    'sampleRecord',
    'source',
  ],
};

describe('public API', () => {
  for (const [specifier, expected] of Object.entries(EXPORTS)) {
    it(`${specifier} exports exactly its documented names`, async () => {
      const module = (await import(specifier)) as Record<string, unknown>;
      assert.deepEqual(Object.keys(module).sort(), [...expected].sort());
      for (const name of expected) assert.notEqual(module[name], undefined, `${specifier}: ${name} is undefined`);
    });
  }

  it('only the documented subpaths can be imported', async () => {
    await assert.rejects(import('bits-upload/dist/src/server/bits-server.js' as string), { code: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
  });

  it("the README's TypeScript examples type-check against the package's declarations", async () => {
    const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
    assert.ok(blocks.length >= 3, `expected the README's examples, found ${blocks.length}`);
    // Inside the package folder, so that `import … from 'bits-upload'` resolves through the exports map.
    const dir = join(ROOT, 'dist', 'readme-examples');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    // The names the examples leave to the reader's own program.
    const prelude = [
      "import type { Logger } from 'pino';",
      'declare const logger: Logger;',
      'declare const pemText: string;',
      'declare const certPem: string;',
      'declare function saveDump(stream: NodeJS.ReadableStream, signal: AbortSignal): Promise<string>;',
      '',
    ].join('\n');
    const files = blocks.map((_, i) => `example-${i + 1}.mts`);
    await Promise.all(blocks.map((code, i) => writeFile(join(dir, files[i]!), `${prelude}${code}\nexport {};\n`)));
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2023'],
          types: ['node'],
          strict: true,
          noEmit: true,
          skipLibCheck: true,
        },
        files,
      }),
    );
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { cwd: dir }).then(
      () => '',
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
    assert.equal(result, '', `README examples do not type-check:\n${result}`);
  });
});
