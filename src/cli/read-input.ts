import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { CliError } from './errors.ts';
import { ExitCode } from './exit-codes.ts';

/** Reads the text of `-f FILE`, or standard input for `-f -`. Returns the text and a name for messages. */
export async function readManifestInput(file: string): Promise<{ text: string; source: string }> {
  if (file === '-') return { text: await text(process.stdin), source: '<stdin>' };
  try {
    return { text: await readFile(file, 'utf8'), source: file };
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new CliError('ERR_CLI_INPUT', `${file}: cannot read: ${reason}`, ExitCode.invalid, {
      cause: error,
    });
  }
}
