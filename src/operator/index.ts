export { runOperator, connectionOf, type OperatorExit } from './operator.ts';
export { parseOperatorArgs, type OperatorConfig } from './config.ts';
export { LeaderElector, microTime, type LeaderElectorOptions } from './leader-election.ts';
export { KubeEventRecorder, type KubeEventRecorderOptions } from './events.ts';
export { installCrds } from './crds.ts';
export { FencedStore, FencedPlatform, type Fence } from './fence.ts';
export { OperatorError, type OperatorErrorCode } from './errors.ts';
