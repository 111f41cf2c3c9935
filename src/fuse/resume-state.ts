// What a restarted server resumes from: the INIT parameters saved in the state directory, and RESEND.
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../lib/index.ts';
import { toError } from '../lib/index.ts';
import type { NegotiatedInit } from './init.ts';
import { InitFlag, NotifyCode } from './protocol.ts';
import type { ReplyWriter } from './reply-writer.ts';

/** The INIT a predecessor negotiated, or undefined when it died before answering INIT. */
export function loadInit(stateDir: string | undefined, logger: Logger): NegotiatedInit | undefined {
  if (stateDir === undefined) return undefined;
  try {
    return JSON.parse(readFileSync(join(stateDir, 'init.json'), 'utf8')) as NegotiatedInit;
  } catch (error) {
    // Died before INIT was answered: the kernel resends INIT itself (it is still in processing).
    logger.warn({ err: toError(error) }, 'no INIT state to resume from; waiting for INIT');
    return undefined;
  }
}

/** Saved atomically (write, then rename) so that a crash never leaves half a file. */
export function saveInit(stateDir: string | undefined, init: NegotiatedInit): void {
  if (stateDir === undefined) return;
  const path = join(stateDir, 'init.json');
  writeFileSync(`${path}.tmp`, JSON.stringify(init));
  renameSync(`${path}.tmp`, path);
}

/** Asks the kernel to resend the requests a crashed predecessor read but never answered. */
export function requestResend(init: NegotiatedInit | undefined, writer: ReplyWriter, logger: Logger): void {
  const kernelFlags = init === undefined ? undefined : BigInt(init.kernelFlags);
  if (kernelFlags !== undefined && (kernelFlags & InitFlag.HAS_RESEND) === 0n) {
    logger.warn(
      'kernel cannot resend requests (protocol < 7.40): requests in flight at the crash stay stuck',
    );
    return;
  }
  // fuse.h 7.40: FUSE_NOTIFY_RESEND moves every request read but not answered back to pending.
  writer.notify(NotifyCode.RESEND, Buffer.alloc(0));
}
