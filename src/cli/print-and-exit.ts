import { ExitCode } from './client-flags.js';

/** One of the exit codes of `bits`. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * Prints `bits <command>: <message>` on stderr and exits with `code` (by default `ExitCode.Usage`,
 * the code of a bad flag, argument or configuration).
 *
 * @example
 * ```ts
 * if (!USER_NAME.test(name)) printAndExit('user', USER_NAME_RULE);
 * ```
 */
export function printAndExit(command: string, message: string, code: ExitCodeValue = ExitCode.Usage): never {
  // Exits at once, so that callers may rely on `never`: stderr is synchronous for files, terminals
  // and (on Linux and Windows) pipes, so the line is written first.
  process.stderr.write(`bits ${command}: ${message}\n`);
  process.exit(code);
}
