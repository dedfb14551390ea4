#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerServe } from './serve.js';
import { registerUpload } from './upload.js';
import { registerDownload } from './download.js';
import { registerJobs } from './jobs.js';
import { registerUser } from './user.js';
import { registerSessions } from './sessions.js';
import { ExitCode } from './client-flags.js';

// The AWS SDK warns on Node below 22 that its releases after early January 2027 will need Node 22.
// This package pins the SDK to releases that run on Node 20 (README, Node versions), so the warning
// does not apply to it; set the variable to "false" to see it anyway.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command();
program
  .name('bits')
  .description('BITS Upload Protocol server and tools')
  .version(pkg.version)
  .showHelpAfterError()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) })
  .exitOverride((err) => {
    // (commander's own errors are all usage errors: an unknown option, a missing argument)
    process.exit(err.exitCode === 0 ? ExitCode.Done : ExitCode.Usage);
  });

registerServe(program);
registerUpload(program);
registerDownload(program);
registerJobs(program);
registerUser(program);
registerSessions(program);

await program.parseAsync(process.argv);
