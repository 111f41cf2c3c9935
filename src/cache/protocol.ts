import type { BlockKey } from './block-key.ts';

/**
 * The HTTP protocol between cache clients and workers (all paths versioned under `/v1`):
 *
 * - `GET  /v1/blocks?<block query>`: the block's bytes (`application/octet-stream`), fetched from the
 *   origin once on a miss. With `locate=1` and the block cacheable, the answer is instead where its
 *   file is (`BLOCK_LOCATION_TYPE`), for a client on the same host to read it directly.
 * - `POST /v1/blocks/load?<block query>`: caches the block without sending it (DataLoad).
 * - `GET  /v1/stats[?files=1]`: `WorkerStats` JSON; `GET /metrics`: Prometheus; `GET /healthz`.
 *
 * Errors are `application/problem+json` (RFC 9457) with a `code` member.
 */
/** Default block size: `spec.worker.blockSize` when unset. */
export const DEFAULT_BLOCK_SIZE_BYTES = 4 * 1024 * 1024;

export const BLOCKS_PATH = '/v1/blocks';
export const LOAD_PATH = '/v1/blocks/load';
/** POST `{ files: [{ mount, path, version }] }`: drops every block of those file versions. */
export const FORGET_PATH = '/v1/blocks/forget';
export const STATS_PATH = '/v1/stats';
export const METRICS_PATH = '/metrics';
export const HEALTH_PATH = '/healthz';

export const BLOCK_LOCATION_TYPE = 'application/vnd.tide.block-location+json';
export const PROBLEM_TYPE = 'application/problem+json';
/** The node the client runs on, so the worker counts local and remote reads apart. */
export const CLIENT_NODE_HEADER = 'x-tide-client-node';
/** Where the served bytes came from: `mem`, `ssd`, `hdd`, `origin` or `flight` (joined a fetch). */
export const SOURCE_HEADER = 'x-tide-source';

export interface BlockRequest extends BlockKey {
  datasetId: string;
  blockSizeBytes: number;
}

export function blockQueryOf(request: BlockRequest, extra: Record<string, string> = {}): string {
  const query = new URLSearchParams({
    dataset: request.datasetId,
    mount: request.mount,
    path: request.path,
    version: request.version,
    index: String(request.index),
    blockSize: String(request.blockSizeBytes),
    ...extra,
  });
  return query.toString();
}

/** The block a query names, or a message saying which parameter is wrong. */
export function parseBlockQuery(query: URLSearchParams): BlockRequest | string {
  const text = (name: string): string | undefined => query.get(name) ?? undefined;
  const datasetId = text('dataset');
  const mount = text('mount');
  const path = text('path');
  const version = text('version');
  const index = Number(text('index'));
  const blockSizeBytes = Number(text('blockSize'));
  if (datasetId === undefined) return 'the dataset parameter is missing';
  if (mount === undefined) return 'the mount parameter is missing';
  if (path === undefined) return 'the path parameter is missing';
  if (version === undefined) return 'the version parameter is missing';
  if (!Number.isSafeInteger(index) || index < 0) return 'the index parameter is not a block number';
  if (!Number.isSafeInteger(blockSizeBytes) || blockSizeBytes < 1)
    return 'the blockSize parameter is not a size';
  return { datasetId, mount, path, version, index, blockSizeBytes };
}

/** What `locate=1` answers for a cached block. */
export interface BlockLocationAnswer {
  filePath: string;
  sizeBytes: number;
  /** The client checks and hands on the file piece by piece, against these checksums. */
  pieceBytes?: number;
  /** XXH64 (seed 0) per piece, 16 lowercase hex digits: what block files are written with. */
  pieceXxh64s?: string[];
  /** Block files of earlier versions: CRC-32 of the whole block and, in later ones, per piece. */
  crc32?: number;
  pieceCrc32s?: number[];
  medium: string;
}

/** RFC 9457 problem details with Tide's stable code. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
}
