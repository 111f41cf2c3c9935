import { Command, CommanderError, Option } from 'commander';
import {
  findKind,
  KINDS,
  ManifestError,
  parseManifests,
  type KindInfo,
  type ManifestResource,
} from '../api/index.ts';
import { embeddedConfigFrom, type EmbeddedConfig } from '../embedded/index.ts';
import { TideError } from '../lib/index.ts';
import { DaemonClient } from './daemon-client.ts';
import { startDaemonProcess, stopDaemonProcess } from './daemon-control.ts';
import { CliError, usageError } from './errors.ts';
import { ExitCode } from './exit-codes.ts';
import { renderDescription, renderObjects, renderTable, renderWatchEvent } from './output.ts';
import { readManifestInput } from './read-input.ts';
import { tideVersion } from './version.ts';

type Row = Record<string, unknown>;
type OutputFormat = 'table' | 'wide' | 'json' | 'yaml';

interface CliContext {
  config: EmbeddedConfig;
  out: (line: string) => void;
}

/** Builds the `tide` command tree. `out` receives command output; errors go to the caller. */
export function buildProgram(context: CliContext): Command {
  const { out, config } = context;
  const withClient = async <T>(work: (client: DaemonClient) => Promise<T>): Promise<T> => {
    const client = new DaemonClient(config.socketPath);
    try {
      return await work(client);
    } finally {
      await client.close();
    }
  };
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
    .description('create or update the resources of a manifest (all or nothing)')
    .requiredOption('-f, --filename <file...>', 'manifest file, or - for standard input')
    .option('--dry-run', 'validate only; change nothing')
    .action(async (options: { filename: string[]; dryRun?: boolean }) => {
      const resources = await readAll(options.filename);
      if (options.dryRun === true) {
        for (const resource of resources)
          out(`${qualified(resource.info)}/${resource.object.metadata.name} valid (dry run)`);
        return;
      }
      const { results, warnings } = await withClient((client) =>
        client
          .call<{
            results: { kind: string; name: string; action: string }[];
            warnings?: { index: number; message: string }[];
          }>('POST', '/v1/apply', { objects: resources.map((resource) => resource.object) })
          .catch((error: unknown) => {
            throw refusedAsManifestError(error, resources);
          }),
      );
      for (const { index, message } of warnings ?? [])
        process.stderr.write(`tide: warning: ${describeResource(resources[index])}${message}\n`);
      for (const result of results)
        out(`${qualified(kindInfo(result.kind))}/${result.name} ${result.action}`);
    });

  program
    .command('get')
    .description('list resources of a kind, or show one')
    .argument('<kind>', `one of: ${KINDS.map((info) => info.singular).join(', ')} (or a short name)`)
    .argument('[name]')
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['table', 'wide', 'json', 'yaml'])
        .default('table'),
    )
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .option('-w, --watch', 'keep printing changes')
    .action(
      async (
        kind: string,
        name: string | undefined,
        options: { output: OutputFormat; namespace: string; watch?: boolean },
      ) => {
        const info = requireKind(kind);
        await withClient(async (client) => {
          const path = `/v1/resources/${info.plural}/${options.namespace}${name === undefined ? '' : `/${name}`}`;
          const objects =
            name === undefined
              ? (await client.call<{ items: Row[] }>('GET', path)).items
              : [await client.call<Row>('GET', path)];
          if (options.watch === true && (options.output === 'json' || options.output === 'yaml')) {
            for (const object of objects)
              out(renderWatchEvent(info.kind, { type: 'ADDED', object }, options.output));
          } else if (options.output === 'json' || options.output === 'yaml') {
            out(renderObjects(objects, options.output, name !== undefined));
          } else if (objects.length === 0) {
            out(`No ${info.plural} found in namespace ${options.namespace}.`);
          } else {
            out(renderTable(info.kind, objects, options.output === 'wide'));
          }
          if (options.watch !== true) return;
          const stop = new AbortController();
          process.once('SIGINT', () => {
            stop.abort();
          });
          const watchPath = `/v1/watch/${info.plural}/${options.namespace}${name === undefined ? '' : `/${name}`}`;
          try {
            for await (const event of client.stream<{ type: string; object: Row }>(watchPath, stop.signal)) {
              out(renderWatchEvent(info.kind, event, options.output));
            }
          } catch (error) {
            if (!stop.signal.aborted) throw error;
          }
        });
      },
    );

  program
    .command('describe')
    .description('show a resource with its conditions and events')
    .argument('<kind>')
    .argument('<name>')
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .action(async (kind: string, name: string, options: { namespace: string }) => {
      const info = requireKind(kind);
      await withClient(async (client) => {
        const object = await client.call<Row>(
          'GET',
          `/v1/resources/${info.plural}/${options.namespace}/${name}`,
        );
        const query = new URLSearchParams({ namespace: options.namespace, kind: info.kind, name });
        const { items } = await client.call<{ items: Row[] }>('GET', `/v1/events?${query.toString()}`);
        out(renderDescription(object, items));
      });
    });

  program
    .command('delete')
    .description('delete a resource by kind and name, or those of a manifest; waits until it is gone')
    .argument('[kind]')
    .argument('[name]')
    .option('-f, --filename <file...>', 'manifest file, or - for standard input')
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .option('--no-wait', 'return once deletion has started')
    .action(
      async (
        kind: string | undefined,
        name: string | undefined,
        options: { filename?: string[]; namespace: string; wait: boolean },
      ) => {
        const targets: { info: KindInfo; namespace: string; name: string }[] = [];
        if (options.filename !== undefined) {
          for (const resource of await readAll(options.filename)) {
            targets.push({
              info: resource.info,
              namespace: resource.object.metadata.namespace,
              name: resource.object.metadata.name,
            });
          }
          targets.reverse();
        } else if (kind !== undefined && name !== undefined) {
          targets.push({ info: requireKind(kind), namespace: options.namespace, name });
        } else {
          throw usageError('delete needs KIND NAME or -f FILE');
        }
        await withClient(async (client) => {
          for (const target of targets) {
            const path = `/v1/resources/${target.info.plural}/${target.namespace}/${target.name}`;
            await client.call('DELETE', path);
            if (options.wait) await waitUntilGone(client, target, path, out);
            out(`${qualified(target.info)} "${target.name}" deleted`);
          }
        });
      },
    );

  program
    .command('scale')
    .description('set the number of cache workers of a runtime')
    .argument('<kind>')
    .argument('<name>')
    .requiredOption('--replicas <count>', 'workers wanted', (value) => Number(value))
    .option('-n, --namespace <namespace>', 'namespace', 'default')
    .action(async (kind: string, name: string, options: { replicas: number; namespace: string }) => {
      const info = requireKind(kind);
      await withClient((client) =>
        client.call('POST', `/v1/scale/${info.plural}/${options.namespace}/${name}`, {
          replicas: options.replicas,
        }),
      );
      out(`${qualified(info)}/${name} scaled to ${options.replicas}`);
    });

  program
    .command('start')
    .description('start the embedded control plane in the background (idempotent)')
    .action(() => startDaemonProcess(config, out));

  program
    .command('stop')
    .description('stop the embedded control plane: unmount every dataset and stop every worker')
    .action(() => stopDaemonProcess(config, out));

  program
    .command('status')
    .description('report whether the control plane runs, and its datasets')
    .action(async () => {
      await withClient(async (client) => {
        const health = await client.call<{ version: string; pid: number }>('GET', '/v1/health');
        const { items } = await client.call<{ items: Row[] }>('GET', '/v1/resources/datasets');
        out(
          `Tide ${health.version} running (pid ${health.pid}); home ${config.home}; ${items.length} dataset(s)`,
        );
        if (items.length > 0) out(renderTable('Dataset', items, true));
      });
    });

  return program;
}

async function waitUntilGone(
  client: DaemonClient,
  target: { info: KindInfo; namespace: string; name: string },
  path: string,
  out: (line: string) => void,
): Promise<void> {
  const started = Date.now();
  let lastReason = '';
  for (;;) {
    try {
      await client.call('GET', path);
    } catch (error) {
      if (error instanceof CliError && error.exitCode === ExitCode.notFound) return;
      throw error;
    }
    if (Date.now() - started > 3000) {
      const query = new URLSearchParams({
        namespace: target.namespace,
        kind: target.info.kind,
        name: target.name,
      });
      const { items } = await client.call<{ items: Row[] }>('GET', `/v1/events?${query.toString()}`);
      const last = items.at(-1);
      const message = typeof last?.['message'] === 'string' ? last['message'] : '';
      if (message !== '' && message !== lastReason && last?.['type'] === 'Warning') {
        out(`waiting for ${target.info.singular} "${target.name}": ${message}`);
        lastReason = message;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function readAll(files: readonly string[]): Promise<ManifestResource[]> {
  const resources: ManifestResource[] = [];
  for (const file of files) {
    const { text, source } = await readManifestInput(file);
    resources.push(...parseManifests(text, source));
  }
  return resources;
}

/** A daemon's refusal of one object, as the same line a manifest error gives: file, document, field. */
function refusedAsManifestError(error: unknown, resources: readonly ManifestResource[]): unknown {
  if (!(error instanceof CliError) || error.refusedObject === undefined) return error;
  const { index, field } = error.refusedObject;
  const resource = resources[index];
  if (resource === undefined) return error;
  return new ManifestError('ERR_MANIFEST_INVALID', [
    `${describeResource(resource)}${field.path === '' ? '(document)' : field.path}: ${field.message}`,
  ]);
}

function describeResource(resource: ManifestResource | undefined): string {
  if (resource === undefined) return '';
  const { kind, metadata } = resource.object;
  return `${resource.source}: document ${resource.documentIndex} (${kind} "${metadata.name}"): `;
}

function kindInfo(kind: string): KindInfo {
  const info = findKind(kind);
  if (info === undefined) throw new CliError('ERR_CLI_USAGE', `unknown kind "${kind}"`, ExitCode.failed);
  return info;
}

function qualified(info: KindInfo): string {
  return info.apiVersion === 'v1' ? info.singular : `${info.singular}.${info.apiVersion.split('/')[0] ?? ''}`;
}

function requireKind(name: string): KindInfo {
  const info = findKind(name);
  if (info === undefined) {
    throw usageError(`unknown kind "${name}" (known: ${KINDS.map((known) => known.singular).join(', ')})`);
  }
  return info;
}

/** Runs the CLI and returns the exit code; every failure is printed as `tide: <message>` lines. */
export async function run(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ExitCode> {
  const program = buildProgram({
    config: embeddedConfigFrom(env),
    out: (line) => process.stdout.write(`${line}\n`),
  });
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
