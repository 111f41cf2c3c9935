import { TideError } from '../lib/index.ts';

export type StoreErrorCode =
  | 'ERR_STORE_NOT_FOUND'
  | 'ERR_STORE_ALREADY_EXISTS'
  | 'ERR_STORE_CONFLICT'
  | 'ERR_STORE_GONE'
  | 'ERR_STORE_INVALID'
  | 'ERR_STORE_CLOSED';

export class StoreError extends TideError<StoreErrorCode> {}
