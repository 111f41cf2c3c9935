// The CLI imports this entry on every command, so it stays light: the daemon itself (and with it
// every component) is loaded only by its own process, src/embedded/daemon-main.ts.
export { embeddedConfigFrom, socketAnswers, type EmbeddedConfig } from './config.ts';
