import { Command, CommanderError, Option } from 'commander';
import { ManifestError, parseManifests, findKind, KINDS } from '../api/index.ts';
import { TideError } from '../lib/index.ts';
import { CliError, usageError } from './errors.ts';
import { ExitCode } from './exit-codes.ts';
import { readManifestInput } from './read-input.ts';
import { tideVersion } from './version.ts';

const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'];

/** Builds the `tide` command tree. `out` receives command output; errors go to the caller. */
export function buildProgram(out: (line: string) => void): Command {
  const program = new Command('tide')
    .description('Dataset orchestration and cache acceleration (Fluid-compatible)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => {
        out(text.trimEnd());
      },
      writeErr: (text) => {
        process.stderr.write(text);
      },
    });

  program
    .command('version')
    .description('print the Tide and Node.js versions')
    .action(() => {
      out(`tide ${tideVersion()} (node ${process.version})`);
    });

  program
    .command('apply')
    .description('create or update the resources of a manifest')
    .requiredOption('-f, --filename <file...>', 'manifest file, or - for standard input')
    .option('--dry-run', 'validate only; change nothing')
    .action(async (options: { filename: string[]; dryRun?: boolean }) => {
      const resources = [];
      for (const file of options.filename) {
        const { text, source } = await readManifestInput(file);
        resources.push(...parseManifests(text, source));
      }
      if (options.dryRun === true) {
        for (const resource of resources) {
          const { metadata } = resource.object;
          out(`${resource.info.singular}/${metadata.name} valid (dry run, namespace ${metadata.namespace})`);
        }
        return;
      }
      throw daemonUnavailable();
    });

  program
    .command('get')
    .description('list resources of a kind, or show one')
    .argument('<kind>', `one of: ${KINDS.map((info) => info.singular).join(', ')} (or a short name)`)
    .argument('[name]')
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'))
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .option('-w, --watch', 'keep printing changes')
    .action((kind: string) => {
      requireKind(kind);
      throw daemonUnavailable();
    });

  program
    .command('describe')
    .description('show a resource with its conditions and events')
    .argument('<kind>')
    .argument('<name>')
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .action((kind: string) => {
      requireKind(kind);
      throw daemonUnavailable();
    });

  program
    .command('delete')
    .description('delete a resource by kind and name, or those of a manifest')
    .argument('[kind]')
    .argument('[name]')
    .option('-f, --filename <file...>', 'manifest file, or - for standard input')
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .action((kind: string | undefined, name: string | undefined, options: { filename?: string[] }) => {
      if (options.filename === undefined && (kind === undefined || name === undefined)) {
        throw usageError('delete needs KIND NAME or -f FILE');
      }
      if (kind !== undefined) requireKind(kind);
      throw daemonUnavailable();
    });

  program
    .command('start')
    .description('start the embedded control plane in the background')
    .action(() => {
      throw new CliError(
        'ERR_NOT_IMPLEMENTED',
        'the embedded control plane is not built yet',
        ExitCode.failed,
      );
    });

  program
    .command('stop')
    .description('stop the embedded control plane, its mounts and workers')
    .action(() => {
      throw new CliError(
        'ERR_NOT_IMPLEMENTED',
        'the embedded control plane is not built yet',
        ExitCode.failed,
      );
    });

  return program;
}

function requireKind(name: string): void {
  if (findKind(name) === undefined) {
    throw usageError(`unknown kind "${name}" (known: ${KINDS.map((info) => info.singular).join(', ')})`);
  }
}

function daemonUnavailable(): CliError {
  return new CliError(
    'ERR_DAEMON_UNAVAILABLE',
    'the Tide control plane is not running: start it with `tide start`',
    ExitCode.unreachable,
  );
}

/** Runs the CLI and returns the exit code; every failure is printed as `tide: <message>` lines. */
export async function run(argv: readonly string[]): Promise<ExitCode> {
  const program = buildProgram((line) => process.stdout.write(`${line}\n`));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.ok;
  } catch (error) {
    return report(error);
  }
}

function report(error: unknown): ExitCode {
  if (error instanceof CommanderError) {
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.invalid;
  }
  if (error instanceof ManifestError) {
    for (const problem of error.problems) process.stderr.write(`tide: ${problem}\n`);
    return ExitCode.invalid;
  }
  if (error instanceof CliError) {
    process.stderr.write(`tide: ${error.message}\n`);
    return error.exitCode;
  }
  const message = error instanceof TideError ? `${error.message} (${error.code})` : String(error);
  process.stderr.write(`tide: ${message}\n`);
  return ExitCode.failed;
}

if (import.meta.main) {
  process.exitCode = await run(process.argv.slice(2));
}
