import type { Command } from 'commander';
import { ntHash } from '../auth/ntlm/index.js';
import { hashPassword } from '../server/auth/password-hash.js';
import { USER_NAME, USER_NAME_RULE, readUsers, writeUsers } from '../server/auth/users-file.js';
import { printAndExit } from './print-and-exit.js';

/** Reads a password: from a prompt without echo on a terminal, else the first line of stdin. */
async function readPassword(): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  }
  const ask = (prompt: string): Promise<string> =>
    new Promise((resolve, reject) => {
      process.stderr.write(prompt);
      stdin.setRawMode(true);
      stdin.resume();
      let value = '';
      const onData = (buf: Buffer): void => {
        for (const ch of buf.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            done();
            resolve(value);
            return;
          }
          if (ch === '\u0003') {
            done();
            reject(new Error('interrupted'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
          else value += ch;
        }
      };
      const done = (): void => {
        stdin.off('data', onData);
        stdin.setRawMode(false);
        stdin.pause();
        process.stderr.write('\n');
      };
      stdin.on('data', onData);
    });
  const first = await ask('Password: ');
  const second = await ask('Again: ');
  if (first !== second) throw new Error('the passwords differ');
  return first;
}

function fail(message: string): never {
  return printAndExit('user', message);
}

/** Registers `bits user add|remove|list`. */
export function registerUser(program: Command): void {
  const user = program.command('user').description('manage the accounts of a users file (Basic and NTLM authentication)');
  user
    .command('add <name>')
    .description('add a user or change its password (read from a prompt, or from stdin when it is not a terminal)')
    .requiredOption('--users <file>', 'the users file')
    .option('--group <group...>', 'groups the user belongs to (for "group:<name>" in allow lists)')
    .option('--ntlm', 'also store the NT hash, so that the account can log in with NTLM (the hash is password-equivalent)')
    .action(async (name: string, flags: { users: string; group?: string[]; ntlm?: boolean }) => {
      if (!USER_NAME.test(name)) fail(USER_NAME_RULE);
      if (flags.ntlm && name.includes('@')) fail('NTLM account names have no @ (that form is a Kerberos principal)');
      const password = await readPassword().catch((err: Error) => fail(err.message));
      if (password.length < 8) fail('the password must have at least 8 characters');
      const users = await readUsers(flags.users).catch((err: Error) => fail(err.message));
      const existed = Object.hasOwn(users, name);
      const hadNt = existed && users[name]!.nt !== undefined;
      users[name] = {
        hash: await hashPassword(password),
        groups: flags.group ?? users[name]?.groups ?? [],
        // (a new password without --ntlm drops the old NT hash: it would still log in with the old password)
        ...(flags.ntlm ? { nt: ntHash(password).toString('hex') } : {}),
      };
      await writeUsers(flags.users, users);
      process.stdout.write(`${existed ? 'updated' : 'added'} ${name}\n`);
      if (flags.ntlm) {
        process.stderr.write(
          `warning: ${flags.users} now holds ${name}'s NT hash for NTLM. It is password-equivalent: anyone who reads it can log in as ${name}. Keep the file readable by the server's account only (it is written with mode 0600).\n`,
        );
      } else if (hadNt) {
        process.stderr.write(`note: ${name} can no longer log in with NTLM (add --ntlm to keep it)\n`);
      }
    });
  user
    .command('remove <name>')
    .description('remove a user')
    .requiredOption('--users <file>', 'the users file')
    .action(async (name: string, flags: { users: string }) => {
      const users = await readUsers(flags.users).catch((err: Error) => fail(err.message));
      if (!Object.hasOwn(users, name)) fail(`no user ${name} in ${flags.users}`);
      delete users[name];
      await writeUsers(flags.users, users);
      process.stdout.write(`removed ${name}\n`);
    });
  user
    .command('list')
    .description('list the users and their groups')
    .requiredOption('--users <file>', 'the users file')
    .action(async (flags: { users: string }) => {
      const users = await readUsers(flags.users).catch((err: Error) => fail(err.message));
      for (const [name, entry] of Object.entries(users).sort(([a], [b]) => a.localeCompare(b))) {
        const groups = entry.groups.length ? entry.groups.join(',') : '';
        process.stdout.write(`${name}${groups || entry.nt ? `\t${groups}` : ''}${entry.nt ? '\tntlm' : ''}\n`);
      }
    });
}
