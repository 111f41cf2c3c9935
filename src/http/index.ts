/**
 * A small HTTP/1.1 client for plain `http:` origins, the one HTTP stack of the project for bodies
 * that matter: the web and S3 connectors (ufs) read through it, and cache clients fetch blocks from
 * their workers with it. It imports only lib.
 *
 * What it speaks (RFC 9112): one request at a time per connection, keep-alive, bodies framed by
 * Content-Length (the fast path), chunked or ended by the close (a slow path for the small error
 * documents that servers send that way). What it does not: TLS, pipelining, request bodies,
 * redirects, upgrades; undici carries those.
 *
 * Files, as undici splits its client:
 * - pool.ts: `Http1Client`, the keep-alive connections to one origin and the requests waiting for one.
 * - connection.ts: one socket; reads answers with `onread` into caller-owned or never-reused buffers.
 * - framing.ts: the request head, the response head, Content-Length and chunked body framing.
 * - types.ts: the request, response, body and timeout shapes, and the default timeouts.
 * - errors.ts: `Http1Error` and its `ERR_HTTP1_*` codes.
 */
export { Http1Client } from './pool.ts';
export { Http1Error, type Http1ErrorCode } from './errors.ts';
export {
  DEFAULT_HTTP_TIMEOUTS,
  type HttpTimeouts,
  type Http1Body,
  type Http1ClientOptions,
  type Http1Request,
  type Http1Response,
} from './types.ts';
