import { TideError } from '../lib/index.ts';

export type OperatorErrorCode =
  /** A write was attempted while this replica does not hold the lease. */
  | 'ERR_NOT_LEADER'
  /** Flags or environment the operator cannot run with. */
  | 'ERR_OPERATOR_CONFIG'
  /** A CustomResourceDefinition was not Established in time. */
  | 'ERR_CRD_NOT_ESTABLISHED';

export class OperatorError extends TideError<OperatorErrorCode> {}
