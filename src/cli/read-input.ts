import { open } from 'node:fs/promises';
import { formatSize, LIMITS } from '../api/index.ts';
import { CliError } from './errors.ts';
import { ExitCode } from './exit-codes.ts';

/**
 * Reads the text of `-f FILE`, or standard input for `-f -`. Returns the text and a name for
 * messages. Input over the manifest limit is refused as soon as the limit is passed, before any
 * of it is parsed, so a huge file costs neither memory nor time.
 */
export async function readManifestInput(file: string): Promise<{ text: string; source: string }> {
  const source = file === '-' ? '<stdin>' : file;
  if (file === '-') return { text: await readCapped(process.stdin, source), source };
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message;
    throw new CliError('ERR_CLI_INPUT', `${file}: cannot read: ${reason}`, ExitCode.invalid, {
      cause: error,
    });
  }
  try {
    const { size } = await handle.stat();
    if (size > LIMITS.manifestBytes) throw tooLarge(source, size);
    return { text: await readCapped(handle.createReadStream({ autoClose: false }), source), source };
  } finally {
    await handle.close();
  }
}

async function readCapped(stream: AsyncIterable<Buffer | string>, source: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += bytes.length;
    if (size > LIMITS.manifestBytes) throw tooLarge(source, size, true);
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function tooLarge(source: string, size: number, atLeast = false): CliError {
  return new CliError(
    'ERR_CLI_INPUT',
    `${source}: ${atLeast ? 'is more than' : 'takes'} ${formatSize(atLeast ? LIMITS.manifestBytes : size)}; manifests over ${formatSize(LIMITS.manifestBytes)} are refused`,
    ExitCode.invalid,
  );
}
