export { embeddedConfigFrom, type EmbeddedConfig } from './config.ts';
export { startDaemon, socketAnswers, type DaemonOptions, type RunningDaemon } from './daemon.ts';
export { createApiServer, type ApiServerOptions, type ApplyAction } from './api-server.ts';
