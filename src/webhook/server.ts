/**
 * The webhook's HTTPS server: Fluid's path `/mutate-fluid-io-v1alpha1-schedulepod` for pod
 * admission and `/healthz`. The certificate can be replaced while serving (renewal).
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toError } from '../lib/index.ts';
import { admit, type AdmissionOptions } from './admission.ts';
import type { KeyPairPem } from './certificates.ts';

/** Fluid's webhook path, so that a configuration written for Fluid works unchanged. */
export const MUTATE_PODS_PATH = '/mutate-fluid-io-v1alpha1-schedulepod';
/** A pod with a few hundred containers is well under this; more is not a pod. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

export interface WebhookServerOptions extends AdmissionOptions {
  certificate: KeyPairPem;
  /** Default 9443 (Fluid's). */
  port?: number;
  /** Default all addresses. */
  host?: string;
}

export interface WebhookServer {
  readonly port: number;
  /** Serves `pair` to new connections from now on. */
  setCertificate(pair: KeyPairPem): void;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const logger = options.logger.child({ component: 'webhook' });
  const admission: AdmissionOptions = { ...options, logger };
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'https://webhook').pathname;
    if (path === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (path !== MUTATE_PODS_PATH || req.method !== 'POST') {
      send(res, 404, {
        message: `no ${req.method ?? ''} ${path} here: the pod webhook is POST ${MUTATE_PODS_PATH}`,
      });
      return;
    }
    const body = await readBody(req);
    if (body === undefined) {
      logger.warn({ path }, `request body over ${MAX_BODY_BYTES} bytes refused`);
      send(res, 413, { message: `an AdmissionReview is at most ${MAX_BODY_BYTES} bytes here` });
      return;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const answer = await admit(parsed, admission);
    send(res, answer.httpStatus, answer.review);
  };
  const server = https.createServer(
    { cert: options.certificate.certPem, key: options.certificate.keyPem },
    (req, res) => {
      handle(req, res).catch((error: unknown) => {
        // admit() answers every review itself; this is a broken connection or a bug.
        logger.error({ err: toError(error) }, 'webhook request failed');
        if (!res.headersSent) send(res, 400, { message: 'the request could not be read' });
        else res.destroy();
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 9443, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, path: MUTATE_PODS_PATH }, 'pod admission webhook listening');
  return {
    port,
    setCertificate: (pair) => {
      server.setSecureContext({ cert: pair.certPem, key: pair.keyPem });
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}
