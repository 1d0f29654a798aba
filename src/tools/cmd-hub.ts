/** `myelin hub`: runs the hub of this host in the foreground. */
import { Hub, type HubOptions } from "../hub/index.js";
import { runtimeDir } from "../node/index.js";
import { aborted, boolOpt, listOpt, numOpt, strOpt, type CommandSpec } from "./common.js";
import { clock } from "./format.js";

export const hubCommand: CommandSpec = {
  path: ["hub"],
  summary: "run the hub of this host in the foreground (registry and discovery)",
  args: [],
  options: {
    listen: {
      type: "string",
      multiple: true,
      arg: "ADDR",
      help: "also listen on ADDR, e.g. tcp://0.0.0.0:7447 for nodes on other hosts (repeatable; the ipc socket is always on)",
    },
    "runtime-dir": {
      type: "string",
      arg: "DIR",
      help: "where the ipc socket and pid file go (default: $MYELIN_RUNTIME_DIR, else $XDG_RUNTIME_DIR/myelin, else /tmp/myelin-<uid>)",
    },
    "node-timeout-ms": {
      type: "string",
      arg: "N",
      help: "remove a node silent for N ms (default 3000)",
    },
    verbose: {
      type: "boolean",
      short: "v",
      help: "also log the comings and goings of tools (hidden nodes, names starting with _)",
    },
  },
  details: [
    "Prints the endpoints it listens on, then one line per event: node joined, left, timed out, declaration refused.",
    "Stops on Ctrl-C or SIGTERM (exit code 0). One hub runs per runtime directory.",
  ],
  examples: [
    "myelin hub",
    "myelin hub --listen tcp://0.0.0.0:7447   # nodes on other hosts connect with MYELIN_HUB=tcp://<this host>:7447",
    "MYELIN_RUNTIME_DIR=/tmp/sim myelin hub   # a separate world, e.g. for a simulation",
  ],
  connects: false,
  async run(ctx, inv) {
    const opts: Partial<HubOptions> = { listen: listOpt(inv, "listen") };
    const dir = strOpt(inv, "runtime-dir");
    if (dir !== undefined) opts.runtimeDir = dir;
    const timeout = numOpt(inv, "node-timeout-ms", { min: 100, integer: true, command: "hub" });
    if (timeout !== undefined) opts.nodeTimeoutMs = timeout;
    const verbose = boolOpt(inv, "verbose");
    opts.log = (line) => {
      if (!verbose && /^node _/.test(line)) return;
      ctx.out(`${clock()} ${line}`);
    };
    const hub = await Hub.start(opts);
    try {
      ctx.out(
        `${clock()} myelin hub ${hub.id} started (pid ${process.pid}, runtime dir ${runtimeDir(opts.runtimeDir)})`,
      );
      for (const ep of hub.endpoints) ctx.out(`${clock()} listening on ${ep}`);
      await aborted(ctx.signal);
    } finally {
      hub.close();
    }
    ctx.out(`${clock()} hub stopped`);
    return 0;
  },
};
