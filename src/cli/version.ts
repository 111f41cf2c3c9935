import { readFileSync } from 'node:fs';

/** The version of this Tide checkout, from package.json. */
export function tideVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}
