// A node:test reporter that prints one figure: the line coverage of the project's own code
// (src/), leaving out tests, benchmarks and examples, which the runner's own table mixes in.
import { relative, sep } from 'node:path';

/** What this reporter reads of a `test:coverage` event. */
interface CoverageEvent {
  type: string;
  data?: {
    summary?: {
      workingDirectory: string;
      files: { path: string; totalLineCount: number; coveredLineCount: number }[];
    };
  };
}

/** Whether a covered file is library code: `src/` or its compiled copy `dist/src/`. */
function isSource(path: string, cwd: string): boolean {
  const rel = relative(cwd, path).split(sep).join('/');
  return /^(dist\/)?src\//.test(rel) && !/\.test\.[jt]s$/.test(rel);
}

/**
 * Reports `src/ line coverage: 87.1 % (10234 of 11750 lines, 96 files)` once the run ends.
 *
 * @example
 * ```sh
 * node --test --experimental-test-coverage \
 *   --test-reporter=spec --test-reporter-destination=stdout \
 *   --test-reporter=./dist/test/helpers/coverage-summary.js --test-reporter-destination=stdout dist/test/*.test.js
 * ```
 */
export default async function* coverageSummary(source: AsyncIterable<CoverageEvent>): AsyncGenerator<string> {
  for await (const event of source) {
    const summary = event.type === 'test:coverage' ? event.data?.summary : undefined;
    if (!summary) continue;
    const files = summary.files.filter((f) => isSource(f.path, summary.workingDirectory));
    const total = files.reduce((n, f) => n + f.totalLineCount, 0);
    const covered = files.reduce((n, f) => n + f.coveredLineCount, 0);
    const pct = total === 0 ? 0 : (100 * covered) / total;
    yield `src/ line coverage: ${pct.toFixed(1)} % (${covered} of ${total} lines, ${files.length} files)\n`;
  }
}
