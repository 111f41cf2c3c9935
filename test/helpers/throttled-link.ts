import { execFile, execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A network link with a known bandwidth, for origins that must be "remote and slow" as a whole:
 * nginx's `limit_rate` caps each request, so parallel requests add up to whatever the machine can
 * send; this caps them all together.
 *
 * The link is a veth pair between this namespace and a network namespace created for it; the
 * server runs inside (`wrap(command)`) and listens on `remoteAddress`. A token bucket (`tc tbf`)
 * on the namespace's end shapes what the server sends, so requests are free and responses share
 * `rateBitsPerSecond`. Needs root (the benchmarks and tests run as root).
 */
export interface ThrottledLink {
  /** The network namespace's name (`ip netns list`). */
  namespace: string;
  /** The namespace's address: servers inside listen here, clients outside connect here. */
  remoteAddress: string;
  /** This namespace's end of the pair: the route back into it (for clients beyond this host's loopback). */
  localAddress: string;
  /** Bits per second shared by every response sent over the link. */
  rateBitsPerSecond: number;
  /** The argv that runs `command` inside the namespace. */
  wrap(command: readonly string[]): string[];
  /** Deletes the namespace and with it both ends of the link; safe to call twice. */
  close(): Promise<void>;
}

export async function createThrottledLink(options: { rateBitsPerSecond: number }): Promise<ThrottledLink> {
  const { rateBitsPerSecond } = options;
  if (!Number.isSafeInteger(rateBitsPerSecond) || rateBitsPerSecond <= 0) {
    throw new RangeError(`A link needs a positive whole rate in bits per second, not ${rateBitsPerSecond}`);
  }
  const id = randomBytes(4).toString('hex');
  const namespace = `tide-link-${id}`;
  const outside = `tlo${id}`;
  const inside = `tli${id}`;
  // A /30 in 10.201.0.0/16 picked at random: links of concurrent runs do not collide in practice.
  const base = randomInt(0, 16384) * 4;
  const address = (host: number): string => `10.201.${(base + host) >> 8}.${(base + host) & 255}`;
  const localAddress = address(1);
  const remoteAddress = address(2);
  const inNamespace = (command: readonly string[]): string[] => [
    'ip',
    'netns',
    'exec',
    namespace,
    ...command,
  ];
  const sh = async (argv: readonly string[]): Promise<void> => {
    await run(argv[0] ?? '', argv.slice(1));
  };
  // A run that dies without calling close() still removes its namespace.
  const deleteOnExit = (): void => {
    try {
      execFileSync('ip', ['netns', 'delete', namespace], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  };
  process.once('exit', deleteOnExit);
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    process.removeListener('exit', deleteOnExit);
    // Deleting the namespace deletes its end of the pair, which deletes the other end.
    await sh(['ip', 'netns', 'delete', namespace]).catch(() => undefined);
    await sh(['ip', 'link', 'delete', outside]).catch(() => undefined);
  };
  try {
    await sh(['ip', 'netns', 'add', namespace]);
    await sh(['ip', 'link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
    await sh(['ip', 'link', 'set', inside, 'netns', namespace]);
    await sh(['ip', 'addr', 'add', `${localAddress}/30`, 'dev', outside]);
    await sh(['ip', 'link', 'set', outside, 'up']);
    await sh(inNamespace(['ip', 'addr', 'add', `${remoteAddress}/30`, 'dev', inside]));
    await sh(inNamespace(['ip', 'link', 'set', inside, 'up']));
    await sh(inNamespace(['ip', 'link', 'set', 'lo', 'up']));
    // The bucket holds 10 ms of traffic (at least 1 MiB, so that offloaded 64 KiB segments pass
    // at high rates); `latency` bounds the queue, beyond which tbf drops and TCP backs off.
    const burstBytes = Math.max(1024 * 1024, Math.round(rateBitsPerSecond / 8 / 100));
    await sh(
      inNamespace([
        'tc',
        'qdisc',
        'add',
        'dev',
        inside,
        'root',
        'tbf',
        'rate',
        `${rateBitsPerSecond}bit`,
        'burst',
        `${burstBytes}b`,
        'latency',
        '50ms',
      ]),
    );
  } catch (error) {
    await close();
    throw new Error(`Cannot create a throttled link: ${(error as Error).message}`, { cause: error });
  }
  return { namespace, remoteAddress, localAddress, rateBitsPerSecond, wrap: inNamespace, close };
}
