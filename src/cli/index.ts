export { run, buildProgram } from './main.ts';
export { ExitCode } from './exit-codes.ts';
