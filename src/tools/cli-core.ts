/**
 * The machinery of the `myelin` command line, apart from its command table: help, argument parsing,
 * dispatch and error reporting. `cli.ts` runs it over every command; `cli-hub.ts` over `myelin hub`
 * alone, so that a running hub does not load the modules of the other commands (the recorder, the
 * gateway's status tools, the renderers…), which would only take memory for as long as it runs.
 *
 * Exit codes: 0 success, 1 the operation failed (the message says why and names the error code),
 * 2 usage mistake (unknown command or option, missing argument), 130 interrupted while waiting.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { MyelinError } from "../errors.js";
import {
  CONNECT_OPTIONS,
  HELP_OPTION,
  importModules,
  Interrupted,
  UsageError,
  type CommandSpec,
  type Context,
  type Invocation,
  type OptionSpec,
  version,
} from "./common.js";
import { didYouMean } from "./format.js";

/** A command group of the help, e.g. `topic`. */
export interface CommandGroup {
  readonly summary: string;
  readonly examples: string[];
}

/** The commands a CLI entry point dispatches to, in help order, and the groups of subcommands. */
export interface CommandTable {
  readonly commands: readonly CommandSpec[];
  readonly groups: Readonly<Record<string, CommandGroup>>;
}

// ---- help ------------------------------------------------------------------------------------

function optionLines(options: Record<string, OptionSpec>): string[] {
  const entries = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short !== undefined ? `-${o.short}, ` : "    "}--${name}${o.arg !== undefined ? ` ${o.arg}` : ""}`;
    return [flag, o.help] as const;
  });
  const w = Math.max(...entries.map(([f]) => f.length));
  return entries.map(([f, h]) => `  ${f.padEnd(w)}  ${h}`);
}

function exampleLines(examples: string[]): string[] {
  return examples.map((e) => `  ${e}`);
}

function usageOf(spec: CommandSpec): string {
  const args = spec.args.map((a) => {
    const name = a.variadic === true ? `${a.name}...` : a.name;
    return a.optional === true ? `[${name}]` : name;
  });
  return ["myelin", ...spec.path, ...args, "[options]"].join(" ");
}

/** The help of one command. */
export function commandHelp(spec: CommandSpec): string[] {
  const out = [`myelin ${spec.path.join(" ")}: ${spec.summary}`, "", `Usage: ${usageOf(spec)}`];
  if (spec.args.length > 0) {
    out.push("", "Arguments:");
    const w = Math.max(...spec.args.map((a) => a.name.length));
    for (const a of spec.args) out.push(`  ${a.name.padEnd(w)}  ${a.help}`);
  }
  out.push("", "Options:", ...optionLines(spec.options));
  out.push(
    "",
    "Global options:",
    ...optionLines({ ...(spec.connects ? CONNECT_OPTIONS : {}), ...HELP_OPTION }),
  );
  if (spec.details !== undefined) out.push("", ...spec.details);
  out.push("", spec.examples.length > 1 ? "Examples:" : "Example:", ...exampleLines(spec.examples));
  return out;
}

function listing(specs: readonly CommandSpec[]): string[] {
  const names = specs.map((s) => s.path.join(" "));
  const w = Math.max(...names.map((n) => n.length));
  return specs.map((s, i) => `  ${names[i]!.padEnd(w)}  ${s.summary}`);
}

/** The help of a command group of `table`, e.g. `myelin topic`. */
export function groupHelpOf(table: CommandTable, group: string): string[] {
  const g = table.groups[group]!;
  const specs = table.commands.filter((c) => c.path[0] === group);
  return [
    `myelin ${group}: ${g.summary}`,
    "",
    `Usage: myelin ${group} <subcommand> [options]`,
    "",
    "Subcommands:",
    ...listing(specs),
    "",
    "Examples:",
    ...exampleLines(g.examples),
    "",
    `Run \`myelin ${group} <subcommand> --help\` for its options.`,
  ];
}

/** The top-level help over the commands of `table`. */
export function mainHelpOf(table: CommandTable): string[] {
  return [
    "myelin: typed topics and services over ZeroMQ, one hub per host (ROS 2-like tools)",
    "",
    "Usage: myelin <command> [<subcommand>] [arguments] [options]",
    "",
    "Commands:",
    ...listing(table.commands),
    "",
    "Global options:",
    ...optionLines({
      ...CONNECT_OPTIONS,
      ...HELP_OPTION,
      version: { type: "boolean", short: "V", help: "print the version" },
    }),
    "",
    "Environment: MYELIN_HUB (hub address), MYELIN_RUNTIME_DIR (runtime directory), MYELIN_DEBUG=1 (stack traces).",
    "",
    "Examples:",
    ...exampleLines([
      "myelin hub                                    # in one terminal",
      "myelin topic pub /chatter std_msgs/String '{data: hello}' --rate 1",
      "myelin topic echo /chatter",
      "myelin node list",
    ]),
    "",
    "Run `myelin <command> --help` for the options of a command.",
  ];
}

// ---- dispatch --------------------------------------------------------------------------------

const GLOBAL_VALUE_OPTIONS = new Set(["--hub", "--runtime-dir", "--import"]);

function parseConfig(spec: CommandSpec): NonNullable<ParseArgsConfig["options"]> {
  const all = { ...spec.options, ...(spec.connects ? CONNECT_OPTIONS : {}), ...HELP_OPTION };
  const config: NonNullable<ParseArgsConfig["options"]> = {};
  for (const [name, o] of Object.entries(all)) {
    config[name] = {
      type: o.type,
      ...(o.short !== undefined ? { short: o.short } : {}),
      ...(o.multiple === true ? { multiple: true } : {}),
    };
  }
  return config;
}

function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "-h" || a === "--help") return true;
  }
  return false;
}

/** A 40-character Z85 text: a CURVE key, which may begin with `-` (one of Z85's characters). */
const CURVE_KEY_TEXT = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

function parseInvocation(spec: CommandSpec, args: string[]): Invocation {
  const name = spec.path.join(" ");
  // A key beginning with '-' (`myelin keys trust cloud -uV…`) is an argument, not options: it is
  // parsed as a placeholder and put back among the positionals.
  const keys = new Map<string, string>();
  const end = args.indexOf("--");
  args = args.map((a, i) => {
    if ((end >= 0 && i > end) || !a.startsWith("-") || !CURVE_KEY_TEXT.test(a)) return a;
    const placeholder = `\u0000key${keys.size}`;
    keys.set(placeholder, a);
    return placeholder;
  });
  let parsed;
  try {
    parsed = parseArgs({ args, options: parseConfig(spec), allowPositionals: true, strict: true });
    if (keys.size > 0) {
      parsed.positionals = parsed.positionals.map((p) => keys.get(p) ?? p);
      const values = parsed.values as Record<string, unknown>;
      for (const [k, v] of Object.entries(values)) {
        if (typeof v === "string") values[k] = keys.get(v) ?? v;
        else if (Array.isArray(v))
          values[k] = v.map((x: unknown) => (typeof x === "string" ? (keys.get(x) ?? x) : x));
      }
    }
  } catch (err) {
    const e = err as Error & { code?: string };
    const opt = /'(-[^']+)'/.exec(e.message)?.[1];
    const known = Object.keys(parseConfig(spec)).map((k) => `--${k}`);
    if (e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && opt !== undefined) {
      throw new UsageError(`${name}: unknown option '${opt}'${didYouMean(opt, known)}`, name);
    }
    throw new UsageError(`${name}: ${e.message.split("\n")[0]!.replace(/\.$/, "")}`, name);
  }
  const required = spec.args.filter((a) => a.optional !== true).length;
  if (parsed.positionals.length < required) {
    const missing = spec.args
      .slice(parsed.positionals.length)
      .filter((a) => a.optional !== true)
      .map((a) => a.name);
    throw new UsageError(`${name}: missing ${missing.join(" and ")}`, name);
  }
  if (parsed.positionals.length > spec.args.length && spec.args.at(-1)?.variadic !== true) {
    const extra = parsed.positionals[spec.args.length]!;
    throw new UsageError(`${name}: unexpected argument '${extra}' (quote DATA that contains spaces)`, name);
  }
  return { positionals: parsed.positionals, values: parsed.values };
}

async function dispatch(table: CommandTable, argv: string[], ctx: Context): Promise<number> {
  const COMMANDS = table.commands;
  const GROUPS = table.groups;
  // Global options before the command are passed on to it.
  const globals: string[] = [];
  let i = 0;
  for (; i < argv.length && argv[i]!.startsWith("-"); i++) {
    const a = argv[i]!;
    if (a === "-V" || a === "--version") {
      ctx.out(`myelin ${version()}`);
      return 0;
    }
    if (a === "-h" || a === "--help") {
      for (const l of mainHelpOf(table)) ctx.out(l);
      return 0;
    }
    const eq = a.indexOf("=");
    const flag = eq < 0 ? a : a.slice(0, eq);
    if (!GLOBAL_VALUE_OPTIONS.has(flag))
      throw new UsageError(`unknown global option '${a}'${didYouMean(flag, GLOBAL_VALUE_OPTIONS)}`);
    if (eq >= 0) globals.push(a);
    else {
      const v = argv[i + 1];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      globals.push(a, v);
      i++;
    }
  }
  const rest = argv.slice(i);
  const word = rest[0];
  if (word === undefined) {
    for (const l of mainHelpOf(table)) ctx.err(l);
    return 2;
  }
  if (word === "help") return dispatch(table, [...rest.slice(1), "--help"], ctx);

  const commands = [...new Set(COMMANDS.map((c) => c.path[0]!))];
  let spec = COMMANDS.find((c) => c.path.length === 1 && c.path[0] === word);
  let args: string[];
  if (spec !== undefined) {
    args = rest.slice(1);
  } else if (word in GROUPS) {
    const sub = rest[1];
    if (sub === undefined || sub.startsWith("-")) {
      if (sub === "-h" || sub === "--help") {
        for (const l of groupHelpOf(table, word)) ctx.out(l);
        return 0;
      }
      for (const l of groupHelpOf(table, word)) ctx.err(l);
      ctx.err("");
      ctx.err(`myelin: ${word} needs a subcommand`);
      return 2;
    }
    spec = COMMANDS.find((c) => c.path[0] === word && c.path[1] === sub);
    if (spec === undefined) {
      const subs = COMMANDS.filter((c) => c.path[0] === word).map((c) => c.path[1]!);
      throw new UsageError(`unknown subcommand '${word} ${sub}'${didYouMean(sub, subs)}`, word);
    }
    args = rest.slice(2);
  } else {
    throw new UsageError(`unknown command '${word}'${didYouMean(word, commands)}`);
  }

  if (wantsHelp(args)) {
    for (const l of commandHelp(spec)) ctx.out(l);
    return 0;
  }
  const inv = parseInvocation(spec, [...globals, ...args]);
  if ("import" in inv.values) await importModules(inv);
  return spec.run(ctx, inv);
}

function describeError(err: unknown): string {
  if (err instanceof MyelinError) return `${err.message} [${err.code}]`;
  if (err instanceof Error) return err.message;
  return String(err);
}

function report(err: unknown, ctx: Context): number {
  if (err instanceof Interrupted) return 130;
  if (err instanceof UsageError) {
    ctx.err(`myelin: ${err.message}`);
    ctx.err(`Run \`myelin ${err.command === "" ? "" : `${err.command} `}--help\` for usage.`);
    return 2;
  }
  ctx.err(`myelin: ${describeError(err)}`);
  if (process.env["MYELIN_DEBUG"] === "1") {
    let e: unknown = err;
    for (let depth = 0; e !== undefined && depth < 5; depth++) {
      ctx.err(depth === 0 ? "" : "caused by:");
      ctx.err(e instanceof Error ? (e.stack ?? e.message) : describeError(e));
      e = e instanceof Error ? e.cause : undefined;
    }
  }
  return 1;
}

/** Where the CLI writes; by default process.stdout and process.stderr. */
export interface CliOutput {
  /** Writes one line (without its newline) to standard output. */
  out: (line: string) => void;
  /** Writes one line (without its newline) to standard error. */
  err: (line: string) => void;
}

/** Commands running in this process, aborted when stdout breaks (e.g. `myelin topic echo /x | head`). */
const running = new Set<AbortController>();
let stdoutBroken = false;
let stdoutGuarded = false;

/**
 * Installs, once per process, the handler of stdout errors. It stays installed after main()
 * returns: an EPIPE can be reported after the last write, and would otherwise crash the process.
 */
function guardStdout(): void {
  if (stdoutGuarded) return;
  stdoutGuarded = true;
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (!stdoutBroken && err.code !== "EPIPE")
      process.stderr.write(`myelin: cannot write to stdout: ${err.message}\n`);
    stdoutBroken = true;
    for (const ac of running) ac.abort();
  });
}

/** Signals this close to the first are the same request (see {@link runCli}). */
const SAME_SIGNAL_MS = 1000;

/**
 * Runs the CLI over the commands of `table` with `argv` (the arguments after `myelin`) and returns
 * the exit code. Ctrl-C or SIGTERM ends a running command cleanly; another one, a second or more
 * later, exits at once. Signals within that second are one request: a Ctrl-C reaches the whole
 * process group, so a parent that forwards it (npm, a launcher script) delivers it twice.
 * `output` replaces stdout and stderr (used by tests); it never throws.
 */
export async function runCli(table: CommandTable, argv: string[], output?: CliOutput): Promise<number> {
  const ac = new AbortController();
  let firstSignalAt = 0;
  const onSignal = (): void => {
    const now = performance.now();
    if (firstSignalAt === 0) firstSignalAt = now;
    else if (now - firstSignalAt >= SAME_SIGNAL_MS) process.exit(130);
    ac.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  if (output === undefined) guardStdout();
  running.add(ac);
  const ctx: Context = {
    signal: ac.signal,
    out:
      output?.out ??
      ((line) => {
        if (!stdoutBroken) process.stdout.write(`${line}\n`);
      }),
    err: output?.err ?? ((line) => void process.stderr.write(`${line}\n`)),
  };
  try {
    return await dispatch(table, argv, ctx);
  } catch (err) {
    return report(err, ctx);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    running.delete(ac);
  }
}
