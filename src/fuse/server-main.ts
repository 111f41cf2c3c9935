/**
 * The FUSE server process the supervisor starts (supervisor.ts): /dev/fuse is its fd 3, the
 * supervisor's IPC channel its fd 4, and argv[2] a JSON ServerProcessConfig. It sends
 * `{ type: 'ready' }` once INIT is answered (or restored) and exits when the mount goes away or the
 * supervisor does.
 */
import { createLogger, toError } from '../lib/index.ts';
import { metadataTtlSecondsOf, parseFuseArgs } from './options.ts';
import { FuseServer } from './server.ts';
import { createFileSource } from './source-registry.ts';
import type { ServerProcessConfig } from './supervisor.ts';

const DEVICE_FD = 3;

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '{}') as ServerProcessConfig;
  const logger = createLogger({ level: config.logLevel ?? 'info' }).child({
    component: 'fuse',
    role: 'server',
  });
  const { options } = parseFuseArgs(config.fuseArgs);
  const controller = new AbortController();
  const source = await createFileSource(config.source, {
    logger,
    signal: controller.signal,
    metadataTtlMs: metadataTtlSecondsOf(options) * 1000,
  });
  const server = new FuseServer({
    fd: DEVICE_FD,
    source,
    options,
    logger,
    stateDir: config.stateDir,
    resume: config.resume,
    deviceIo: config.deviceIo,
    readers: config.readers,
  });
  // Without its supervisor nobody would unmount or restart: leave, and let the next start clear it.
  process.on('disconnect', () => {
    server.stop();
    process.exit(0);
  });
  server.start();
  await server.ready;
  process.send?.({ type: 'ready', init: server.negotiated });
  await server.closed;
  controller.abort();
  await source.close?.();
  process.exit(0);
}

main().catch((error: unknown) => {
  process.stderr.write(`tide fuse server: ${toError(error).stack ?? String(error)}\n`);
  process.exit(1);
});
