/**
 * `myelin hub` on its own: the entry `bin/myelin` runs when the first argument is `hub`. It is the
 * same command, help and error reporting as through cli.ts, but loads only the hub command's
 * modules: a hub runs for days, and the modules of the other commands (the recorder, the renderers,
 * the status tools) would only hold memory.
 */
import { runCli, type CliOutput } from "./cli-core.js";
import { hubCommand } from "./cmd-hub.js";

export { version } from "./common.js";

/** Runs `myelin <argv>` where `argv[0]` is `hub`; the exit code (see cli.ts). */
export function main(argv: string[], output?: CliOutput): Promise<number> {
  return runCli({ commands: [hubCommand], groups: {} }, argv, output);
}
