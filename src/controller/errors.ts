import { TideError } from '../lib/index.ts';

export type ControllerErrorCode =
  | 'ERR_SECRET_NOT_FOUND'
  | 'ERR_SECRET_KEY_NOT_FOUND'
  | 'ERR_INVALID_RUNTIME'
  | 'ERR_INVALID_DATALOAD'
  | 'ERR_CRONHPA_TARGET';

/** A problem with the desired state that the user must fix; `reason` is the condition reason. */
export class ControllerError extends TideError<ControllerErrorCode> {
  get reason(): string {
    switch (this.code) {
      case 'ERR_SECRET_NOT_FOUND':
      case 'ERR_SECRET_KEY_NOT_FOUND':
        return 'SecretNotFound';
      case 'ERR_INVALID_RUNTIME':
        return 'InvalidRuntime';
      case 'ERR_INVALID_DATALOAD':
        return 'InvalidDataLoad';
      case 'ERR_CRONHPA_TARGET':
        return 'TargetNotFound';
    }
  }
}
