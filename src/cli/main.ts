#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { ExitCode } from './client-flags.js';

type Register = (program: Command) => void;

/**
 * The modules of the commands, loaded on demand: `bits upload` need not load the whole server.
 * Each entry names the commands its module registers.
 */
const COMMANDS: readonly { readonly names: readonly string[]; load(): Promise<Register> }[] = [
  { names: ['serve'], load: async () => (await import('./serve.js')).registerServe },
  { names: ['upload'], load: async () => (await import('./upload.js')).registerUpload },
  { names: ['download'], load: async () => (await import('./download.js')).registerDownload },
  { names: ['jobs', 'resume', 'cancel'], load: async () => (await import('./jobs.js')).registerJobs },
  { names: ['agent', 'info', 'suspend', 'complete', 'priority'], load: async () => (await import('./agent.js')).registerAgent },
  { names: ['bitsadmin'], load: async () => (await import('./bitsadmin.js')).registerBitsadmin },
  { names: ['user'], load: async () => (await import('./user.js')).registerUser },
  { names: ['sessions'], load: async () => (await import('./sessions.js')).registerSessions },
];

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

// The first argument that is not an option names the command; help, a version or an unknown
// command loads them all (so that the help lists every one, in this order).
const named = process.argv.slice(2).find((a) => !a.startsWith('-'));
const wanted = COMMANDS.filter((c) => named !== undefined && c.names.includes(named));
for (const c of wanted.length > 0 ? wanted : COMMANDS) (await c.load())(program);

await program.parseAsync(process.argv);
