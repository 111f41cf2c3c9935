/**
 * An HTTPS admission webhook server on 127.0.0.1 for tests, with its own CA. Register it with
 * `clientConfig: { url: server.url('/path'), caBundle: server.caBundle }` (a `service:` reference
 * cannot work: there is no kube-proxy and endpoints may not be loopback).
 */
import https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestCa } from './pki.ts';

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource: { group: string; version: string; resource: string };
  namespace?: string;
  name?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  dryRun?: boolean;
  object?: Record<string, unknown>;
  oldObject?: Record<string, unknown>;
}

export interface AdmissionResponse {
  allowed: boolean;
  status?: { code?: number; message?: string };
  /** JSON patch operations; encoded and typed for the API server by the server. */
  patch?: unknown[];
  warnings?: string[];
}

export type AdmissionHandler = (request: AdmissionRequest) => AdmissionResponse | Promise<AdmissionResponse>;

export interface WebhookServer {
  /** `https://127.0.0.1:<port><path>` */
  url(path: string): string;
  /** base64 of the CA certificate, for `clientConfig.caBundle`. */
  caBundle: string;
  /** Every AdmissionRequest received, per path, in order. */
  calls: Map<string, AdmissionRequest[]>;
  stop(): Promise<void>;
}

export async function startWebhookServer(handlers: Record<string, AdmissionHandler>): Promise<WebhookServer> {
  const dir = await mkdtemp(join(tmpdir(), 'tide-webhook-'));
  try {
    const ca = await TestCa.create(dir, { name: 'webhook-ca', commonName: 'tide-webhook-ca' });
    const cert = await ca.issue({
      name: 'webhook',
      commonName: '127.0.0.1',
      ipAddresses: ['127.0.0.1'],
      dnsNames: ['localhost'],
      usage: 'server',
    });
    const calls = new Map<string, AdmissionRequest[]>();
    const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
      const path = new URL(req.url ?? '/', 'https://127.0.0.1').pathname;
      const handler = handlers[path];
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void (async () => {
          if (req.method !== 'POST' || handler === undefined) {
            res.writeHead(404).end();
            return;
          }
          const review = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            apiVersion: string;
            request: AdmissionRequest;
          };
          const list = calls.get(path) ?? [];
          list.push(review.request);
          calls.set(path, list);
          let answer: AdmissionResponse;
          try {
            answer = await handler(review.request);
          } catch (error) {
            answer = {
              allowed: false,
              status: { code: 500, message: `webhook handler failed: ${String(error)}` },
            };
          }
          const { patch, ...rest } = answer;
          const response = {
            uid: review.request.uid,
            ...rest,
            ...(patch !== undefined && {
              patchType: 'JSONPatch',
              patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
            }),
          };
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ apiVersion: review.apiVersion, kind: 'AdmissionReview', response }));
        })();
      });
    });
    await new Promise<void>((res, rej) => server.once('error', rej).listen(0, '127.0.0.1', res));
    const address = server.address();
    if (address === null || typeof address !== 'object') throw new Error('webhook server has no address');
    return {
      url: (path) => `https://127.0.0.1:${address.port}${path}`,
      caBundle: Buffer.from(ca.files.certPem).toString('base64'),
      calls,
      stop: async () => {
        server.closeAllConnections();
        await new Promise<void>((res) => {
          server.close(() => {
            res();
          });
        });
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
