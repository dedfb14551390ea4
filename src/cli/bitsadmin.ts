import { resolve } from 'node:path';
import type { Command } from 'commander';
import { AgentError } from '../client/agent-client.js';
import type { AgentClient } from '../client/agent-client.js';
import { PRIORITIES } from '../client/agent-protocol.js';
import type { AgentJobInfo, AgentJobType, Priority } from '../client/agent-protocol.js';
import { defaultStateDir } from '../client/journal.js';
import { connectAgent } from './agent.js';
import { ExitCode, printError, runAction, UsageError } from './client-flags.js';

/** One verb: its arguments (after the verb) and what it prints. */
type Verb = (agent: AgentClient, args: string[]) => Promise<number>;

const out = (line: string): void => void process.stdout.write(`${line}\n`);

function need(args: string[], n: number, usage: string): void {
  if (args.length < n) throw new UsageError(`usage: bits bitsadmin ${usage}`);
}

/** `{id}` as bitsadmin shows job GUIDs. */
const guid = (j: AgentJobInfo): string => `{${j.id}}`;

/** One line per job, as `bitsadmin /list` and `/info` print them. */
function line(j: AgentJobInfo): string {
  const filesDone = j.files.filter((f) => f.done).length;
  return `${guid(j)} '${j.name ?? ''}' ${j.state} ${filesDone} / ${j.files.length} ${j.bytesDone} / ${j.bytesTotal ?? 'UNKNOWN'}`;
}

function verbose(j: AgentJobInfo): string {
  const rows = [
    `GUID: ${guid(j)} DISPLAY: '${j.name ?? ''}'`,
    `TYPE: ${j.type.toUpperCase()} STATE: ${j.state} PRIORITY: ${j.priority.toUpperCase()}`,
    `FILES: ${j.files.filter((f) => f.done).length} / ${j.files.length} BYTES: ${j.bytesDone} / ${j.bytesTotal ?? 'UNKNOWN'}`,
    `CREATION TIME: ${new Date(j.createdAt).toISOString()} MODIFICATION TIME: ${new Date(j.modifiedAt).toISOString()}`,
    `ERROR COUNT: ${j.errorCount}${j.error ? ` ERROR: ${j.error.code}: ${j.error.message}` : ''}`,
  ];
  for (const f of j.files) rows.push(`  ${f.url} -> ${f.file} ${f.bytesDone} / ${f.bytesTotal ?? 'UNKNOWN'}${f.done ? ' DONE' : ''}`);
  return rows.join('\n');
}

function typeSwitch(args: string[]): { type: AgentJobType; rest: string[] } {
  let type: AgentJobType = 'download';
  const rest: string[] = [];
  for (const a of args) {
    const s = a.toLowerCase();
    if (s === '/download') type = 'download';
    else if (s === '/upload') type = 'upload';
    else if (s === '/upload-reply') type = 'upload-reply';
    else rest.push(a);
  }
  return { type, rest };
}

function priorityArg(value: string): Priority {
  const p = value.toLowerCase() as Priority;
  if (!PRIORITIES.includes(p)) throw new UsageError(`priority must be FOREGROUND, HIGH, NORMAL or LOW, not "${value}"`);
  return p;
}

function secondsArg(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${what} must be a whole number of seconds, not "${value}"`);
  return n * 1000;
}

/**
 * Splits a command line into arguments as Windows does for the common cases: spaces separate,
 * double quotes group (no shell is ever involved).
 *
 * @example
 * ```ts
 * splitCommandLine('"C:\\Program Files\\x.exe" a "b c"'); // ['C:\\Program Files\\x.exe', 'a', 'b c']
 * ```
 */
export function splitCommandLine(text: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  let any = false;
  for (const c of text) {
    if (c === '"') {
      quoted = !quoted;
      any = true;
    } else if (/\s/.test(c) && !quoted) {
      if (any) out.push(current);
      current = '';
      any = false;
    } else {
      current += c;
      any = true;
    }
  }
  if (any) out.push(current);
  return out;
}

/** A verb that does one thing to the job its one argument names, and says so as bitsadmin does. */
function oneJob(usage: string, act: (agent: AgentClient, id: string) => Promise<unknown>, said: string): Verb {
  return async (agent, args) => {
    need(args, 1, usage);
    await act(agent, args[0]!);
    out(said);
    return ExitCode.Done;
  };
}

const VERBS: Record<string, Verb> = {
  '/create': async (agent, args) => {
    const { type, rest } = typeSwitch(args);
    need(rest, 1, '/create [/download | /upload | /upload-reply] <displayname>');
    const job = await agent.enqueue({ type, files: [], name: rest[0], suspended: true });
    out(`Created job ${guid(job)}.`);
    return ExitCode.Done;
  },
  '/addfile': async (agent, args) => {
    need(args, 3, '/addfile <job> <remote URL> <local file>');
    const [id, url, file] = args as [string, string, string];
    await agent.update(id, { addFiles: [{ url, file: resolve(file) }] });
    out(`Added ${url} -> ${resolve(file)} to job.`);
    return ExitCode.Done;
  },
  '/resume': oneJob('/resume <job>', (agent, id) => agent.resume(id), 'Job resumed.'),
  '/suspend': oneJob('/suspend <job>', (agent, id) => agent.suspend(id), 'Job suspended.'),
  '/cancel': oneJob('/cancel <job>', (agent, id) => agent.cancel(id), 'Job canceled.'),
  '/complete': async (agent, args) => {
    need(args, 1, '/complete <job>');
    const job = await agent.complete(args[0]!);
    const done = await agent.waitFor(job.id, ['ACKNOWLEDGED', 'ERROR', 'CANCELLED']);
    if (done.state !== 'ACKNOWLEDGED') {
      printError('bitsadmin', `job ${guid(done)} is ${done.state}: ${done.error?.message ?? ''}`);
      return ExitCode.Fatal;
    }
    out('Job completed.');
    return ExitCode.Done;
  },
  '/info': async (agent, args) => {
    need(args, 1, '/info <job> [/verbose]');
    const job = await agent.info(args[0]!);
    out(args.slice(1).some((a) => a.toLowerCase() === '/verbose') ? verbose(job) : line(job));
    return ExitCode.Done;
  },
  '/list': async (agent, args) => {
    const jobs = await agent.list();
    const v = args.some((a) => a.toLowerCase() === '/verbose');
    for (const j of jobs) out(v ? verbose(j) : line(j));
    out(`Listed ${jobs.length} job(s).`);
    return ExitCode.Done;
  },
  '/monitor': async (agent) => {
    const show = async (): Promise<void> => {
      out(`--- ${new Date().toISOString()}`);
      for (const j of await agent.list()) out(line(j));
    };
    let pending = false;
    agent.on('job', () => {
      if (pending) return;
      pending = true;
      setTimeout(() => {
        pending = false;
        void show();
      }, 500);
    });
    await agent.watch();
    await show();
    return new Promise<number>((done) => {
      process.once('SIGINT', () => done(ExitCode.Done));
      process.once('SIGTERM', () => done(ExitCode.Done));
      agent.once('close', () => done(ExitCode.Fatal));
    });
  },
  '/setpriority': async (agent, args) => {
    need(args, 2, '/setpriority <job> FOREGROUND|HIGH|NORMAL|LOW');
    const job = await agent.setPriority(args[0]!, priorityArg(args[1]!));
    out(`Priority set to ${job.priority.toUpperCase()}.`);
    return ExitCode.Done;
  },
  '/setnotifycmdline': async (agent, args) => {
    need(args, 3, '/setnotifycmdline <job> <program | NULL> <parameters | NULL>');
    const [id, program, parameters] = args as [string, string, string];
    if (program.toUpperCase() === 'NULL') {
      await agent.update(id, { notifyCommand: [] });
      out('notification command line cleared.');
      return ExitCode.Done;
    }
    // As on Windows, the parameters are the whole command line, the program's name first.
    const words = parameters.toUpperCase() === 'NULL' ? [] : splitCommandLine(parameters);
    const argv = [program, ...(words.length > 0 ? words.slice(1) : [])];
    await agent.update(id, { notifyCommand: argv, notifyShell: false });
    out(`notification command line set to '${program}' '${parameters}'.`);
    return ExitCode.Done;
  },
  '/setminretrydelay': async (agent, args) => {
    need(args, 2, '/setminretrydelay <job> <seconds>');
    await agent.update(args[0]!, { minRetryDelayMs: secondsArg(args[1]!, 'the retry delay') });
    out(`Minimum retry delay set to ${args[1]}.`);
    return ExitCode.Done;
  },
  '/setnoprogresstimeout': async (agent, args) => {
    need(args, 2, '/setnoprogresstimeout <job> <seconds>');
    await agent.update(args[0]!, { noProgressTimeoutMs: secondsArg(args[1]!, 'the no-progress timeout') });
    out(`No progress timeout set to ${args[1]}.`);
    return ExitCode.Done;
  },
  '/setcredentials': async (agent, args) => {
    need(args, 5, '/setcredentials <job> SERVER BASIC|NTLM|NEGOTIATE <user> <password>');
    const [id, target, scheme, user, password] = args as [string, string, string, string, string];
    if (target.toUpperCase() !== 'SERVER') throw new UsageError('only SERVER credentials are supported (a proxy comes from the environment)');
    const s = scheme.toUpperCase();
    if (s === 'BASIC') await agent.update(id, { user: `${user}:${password}` });
    else if (s === 'NTLM') await agent.update(id, { user: `${user}:${password}`, auth: 'ntlm' });
    else if (s === 'NEGOTIATE') await agent.update(id, { auth: 'negotiate' });
    else throw new UsageError(`scheme ${scheme} is not supported: BASIC, NTLM or NEGOTIATE (with the Kerberos ticket of the credential cache)`);
    out('Credentials set.');
    return ExitCode.Done;
  },
  '/transfer': async (agent, args) => {
    const { type, rest } = typeSwitch(args);
    let priority: Priority | undefined;
    const words: string[] = [];
    for (let i = 0; i < rest.length; i++) {
      if (rest[i]!.toLowerCase() === '/priority') priority = priorityArg(rest[++i] ?? '');
      else words.push(rest[i]!);
    }
    need(words, 3, '/transfer <name> [/download | /upload | /upload-reply] [/priority <level>] <remote URL> <local file> [<remote URL> <local file> …]');
    const [name, ...pairs] = words as [string, ...string[]];
    if (pairs.length % 2 !== 0) throw new UsageError('give <remote URL> <local file> pairs');
    const files = [];
    for (let i = 0; i < pairs.length; i += 2) files.push({ url: pairs[i]!, file: resolve(pairs[i + 1]!) });
    const job = await agent.enqueue({ type, files, name, priority, autoComplete: true });
    out(`Transfer job ${guid(job)} (${name}) queued.`);
    const done = await agent.waitFor(job.id, ['ACKNOWLEDGED', 'ERROR', 'CANCELLED']);
    if (done.state !== 'ACKNOWLEDGED') {
      printError('bitsadmin', `transfer ${guid(done)} is ${done.state}${done.error ? `: ${done.error.message}` : ''} (the job is kept: /resume or /cancel it)`);
      return ExitCode.Fatal;
    }
    out('Transfer complete.');
    return ExitCode.Done;
  },
};

async function bitsadminAction(words: string[], flags: { stateDir?: string }): Promise<number> {
  const [verb, ...args] = words;
  const run = verb === undefined ? undefined : VERBS[verb.toLowerCase()];
  if (!run) throw new UsageError(`${verb === undefined ? 'no verb' : `unknown verb ${verb}`}: one of ${Object.keys(VERBS).join(' ')}`);
  const agent = await connectAgent(flags.stateDir);
  try {
    return await run(agent, args);
  } catch (err) {
    if (err instanceof AgentError && err.code !== 'INTERNAL' && err.code !== 'DISCONNECTED') throw new UsageError(err.message);
    throw err;
  } finally {
    agent.close();
  }
}

/**
 * Registers `bits bitsadmin`, the common `bitsadmin` verbs mapped onto the agent.
 *
 * @example
 * ```ts
 * registerBitsadmin(program);
 * ```
 */
export function registerBitsadmin(program: Command): void {
  program
    .command('bitsadmin')
    .description(`bitsadmin's common verbs on the agent: ${Object.keys(VERBS).join(' ')}`)
    .argument('<verb-and-args...>', 'a verb such as /create and its arguments, as bitsadmin takes them')
    .option('--state-dir <dir>', `the agent's state directory (default ${defaultStateDir()})`)
    .allowUnknownOption()
    .action((words: string[], flags: { stateDir?: string }) => runAction('bitsadmin', () => bitsadminAction(words, flags)));
}
