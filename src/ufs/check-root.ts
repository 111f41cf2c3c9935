import { UfsError } from './errors.ts';
import type { UnderFileSystem } from './types.ts';

/**
 * `check()` of a connector whose root is a directory it can stat (a local directory, a web
 * server's directory): the stat's own errors as they are, ERR_UFS_NOT_A_DIRECTORY for a file.
 */
export async function checkRootIsDirectory(
  ufs: Pick<UnderFileSystem, 'stat' | 'description'>,
  options: { signal?: AbortSignal },
): Promise<void> {
  const root = await ufs.stat('', options);
  if (root.type !== 'directory') {
    throw new UfsError('ERR_UFS_NOT_A_DIRECTORY', `Cannot use ${ufs.description} as it is not a directory`);
  }
}
