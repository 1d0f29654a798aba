/**
 * `myelin completion bash|zsh`: a shell completion script generated from the command table
 * (commands, subcommands, options), which completes topic, service, node and parameter names and
 * type names by asking `myelin` itself (quietly) while you type.
 *
 * Both scripts share one function, `_myelin_candidates`, written in the common subset of bash and
 * zsh: given the words up to the cursor it prints what may come next (first line: `words`,
 * `described` — `word:description` lines — or `files`). The shell-specific part only hands that to
 * bash's `compgen`/`COMPREPLY` or zsh's `_describe`/`compadd`/`_files`.
 */
import {
  CONNECT_OPTIONS,
  HELP_OPTION,
  UsageError,
  version,
  type CommandSpec,
  type OptionSpec,
} from "./common.js";

/** What a positional argument is completed with. */
type ArgKind = "topic" | "service" | "node" | "param" | "msgtype" | "srvtype" | "file" | "shell" | "none";

/** The completion of positional argument `name` of `spec`. */
function argKind(spec: CommandSpec, name: string): ArgKind {
  const group = spec.path[0];
  switch (name) {
    case "TOPIC":
      return "topic";
    case "NODE":
      return "node";
    case "FILE":
    case "SPEC":
      return "file";
    case "SHELL":
      return "shell";
    case "TYPE":
      return group === "service" ? "srvtype" : group === "interface" ? "none" : "msgtype";
    case "NAME":
      if (group === "service") return "service";
      if (group === "node") return "node";
      if (group === "param") return "param";
      return "none";
    default:
      return "none";
  }
}

/** Option values completed as file names (by their placeholder). */
const FILE_ARGS = new Set(["FILE", "DIR", "MODULE", "SPEC"]);

/** Single-quotes `s` for sh. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** One `word:description` line for zsh's _describe (colons in the word escaped). */
function described(word: string, description: string): string {
  return `${word.replace(/:/g, "\\:")}:${description.replace(/\s+/g, " ")}`;
}

/** All option flags of a command (its own, the global ones and --help), with their specs. */
function flagsOf(spec: CommandSpec | undefined): [string, OptionSpec][] {
  const all = {
    ...(spec?.options ?? {}),
    ...(spec === undefined || spec.connects ? CONNECT_OPTIONS : {}),
    ...HELP_OPTION,
  };
  const out: [string, OptionSpec][] = [];
  for (const [name, o] of Object.entries(all)) {
    out.push([`--${name}`, o]);
    if (o.short !== undefined) out.push([`-${o.short}`, o]);
  }
  return out;
}

/** `case` arms printing lines, one arm per key. */
function caseArms(entries: [string, string[]][], indent: string): string {
  return entries
    .map(
      ([key, lines]) =>
        `${indent}${q(key)})\n${lines.map((l) => `${indent}  printf '%s\\n' ${q(l)}`).join("\n") || `${indent}  :`} ;;`,
    )
    .join("\n");
}

/**
 * The shell functions both scripts share (bash and zsh in sh emulation): `_myelin_run`, which runs
 * myelin quietly with the --hub/--runtime-dir given on the line, and `_myelin_candidates`.
 */
function sharedFunctions(commands: readonly CommandSpec[]): string {
  const groups = [...new Set(commands.filter((c) => c.path.length > 1).map((c) => c.path[0]!))];
  const top: [string, string][] = [];
  for (const c of commands) {
    const w = c.path[0]!;
    if (top.some(([x]) => x === w)) continue;
    top.push([
      w,
      c.path.length > 1
        ? `${w} commands (${commands
            .filter((x) => x.path[0] === w)
            .map((x) => x.path[1])
            .join(", ")})`
        : c.summary,
    ]);
  }
  const subs: [string, string[]][] = groups.map((g) => [
    g,
    commands.filter((c) => c.path[0] === g).map((c) => described(c.path[1]!, c.summary)),
  ]);
  const opts: [string, string[]][] = commands.map((c) => [
    c.path.join(" "),
    flagsOf(c).map(([f, o]) => described(f, o.help)),
  ]);
  const valueOpts: [string, string[]][] = commands.map((c) => [
    c.path.join(" "),
    [
      flagsOf(c)
        .filter(([, o]) => o.type === "string")
        .map(([f]) => f)
        .join(" "),
    ],
  ]);
  const fileOpts: [string, string[]][] = commands.map((c) => [
    c.path.join(" "),
    [
      flagsOf(c)
        .filter(([, o]) => o.type === "string" && FILE_ARGS.has(o.arg ?? ""))
        .map(([f]) => f)
        .join(" "),
    ],
  ]);
  const positionals: [string, string[]][] = [];
  for (const c of commands) {
    c.args.forEach((a, i) => {
      const kind = argKind(c, a.name);
      if (kind !== "none") positionals.push([`${c.path.join(" ")}:${i + 1}`, [kind]]);
    });
  }
  const globalOpts = Object.entries({ ...CONNECT_OPTIONS, ...HELP_OPTION })
    .flatMap(([n, o]) => [
      described(`--${n}`, o.help),
      ...(o.short !== undefined ? [described(`-${o.short}`, o.help)] : []),
    ])
    .concat([described("--version", "print the version"), described("-V", "print the version")]);
  return `# Runs myelin quietly: $1 the myelin command, $2 --hub value, $3 --runtime-dir value, then its arguments.
_myelin_run() {
  local exe="$1" hub="$2" rdir="$3"
  shift 3
  if [ -n "$hub" ] && [ -n "$rdir" ]; then "$exe" --hub "$hub" --runtime-dir "$rdir" "$@" 2>/dev/null
  elif [ -n "$hub" ]; then "$exe" --hub "$hub" "$@" 2>/dev/null
  elif [ -n "$rdir" ]; then "$exe" --runtime-dir "$rdir" "$@" 2>/dev/null
  else "$exe" "$@" 2>/dev/null
  fi
}

_myelin_subcommands() {
  case "$1" in
${caseArms(subs, "    ")}
  esac
}

_myelin_options() {
  case "$1" in
${caseArms(opts, "    ")}
    *)
${globalOpts.map((l) => `      printf '%s\\n' ${q(l)}`).join("\n")} ;;
  esac
}

_myelin_value_options() {
  case "$1" in
${caseArms(valueOpts, "    ")}
    *) echo '--hub --runtime-dir --import' ;;
  esac
}

_myelin_file_options() {
  case "$1" in
${caseArms(fileOpts, "    ")}
    *) echo '--import' ;;
  esac
}

_myelin_positional() {
  case "$1" in
${caseArms(positionals, "    ")}
  esac
}

# Prints what may come at the cursor. $1: the myelin command; then the words after it up to and
# including the one being completed. First line: words, described (word:description) or files.
_myelin_candidates() {
  [ -n "$ZSH_VERSION" ] && emulate -L sh
  local exe="$1" cmd="" sub="" words_at="" npos=0 skip="" hub="" rdir="" w="" prev="" node=""
  shift
  while [ $# -gt 1 ]; do
    w="$1"
    shift
    if [ -n "$skip" ]; then
      case "$skip" in
        --hub) hub="$w" ;;
        --runtime-dir) rdir="$w" ;;
      esac
      skip=""
      continue
    fi
    case "$w" in
      --hub=*) hub="\${w#--hub=}"; continue ;;
      --runtime-dir=*) rdir="\${w#--runtime-dir=}"; continue ;;
      -*=*) continue ;;
      -*)
        case " $(_myelin_value_options "$words_at") " in
          *" $w "*) skip="$w" ;;
        esac
        continue ;;
    esac
    if [ -z "$cmd" ]; then
      cmd="$w"
      words_at="$w"
      continue
    fi
    if [ -z "$sub" ] && [ -n "$(_myelin_subcommands "$cmd")" ]; then
      sub="$w"
      words_at="$cmd $sub"
      continue
    fi
    npos=$((npos + 1))
    [ "$npos" -eq 1 ] && node="$w"
  done
  w="$1"
  if [ -n "$skip" ]; then
    case " $(_myelin_file_options "$words_at") " in
      *" $skip "*) echo files ;;
      *) echo words ;;
    esac
    return 0
  fi
  case "$w" in
    -*)
      echo described
      _myelin_options "$words_at"
      return 0 ;;
  esac
  if [ -z "$cmd" ]; then
    echo described
${top.map(([w, d]) => `    printf '%s\\n' ${q(described(w, d))}`).join("\n")}
    return 0
  fi
  if [ -z "$sub" ] && [ -n "$(_myelin_subcommands "$cmd")" ]; then
    echo described
    _myelin_subcommands "$cmd"
    return 0
  fi
  case "$(_myelin_positional "$words_at:$((npos + 1))")" in
    topic) echo words; _myelin_run "$exe" "$hub" "$rdir" topic list ;;
    service) echo words; _myelin_run "$exe" "$hub" "$rdir" service list ;;
    node) echo words; _myelin_run "$exe" "$hub" "$rdir" node list | awk 'NR > 1 { print $1 }' ;;
    param) echo words; _myelin_run "$exe" "$hub" "$rdir" param list "$node" | awk 'NR > 1 { print $1 }' ;;
    msgtype) echo words; "$exe" interface list 2>/dev/null | awk '/^Services:/ { s = 1 } /^  / { if (!s) print $1 }' ;;
    srvtype) echo words; "$exe" interface list 2>/dev/null | awk '/^Services:/ { s = 1; next } /^  / { if (s) print $1 }' ;;
    file) echo files ;;
    shell) echo words; echo bash; echo zsh ;;
    *) echo words ;;
  esac
}`;
}

/** The bash completion script for `commands`. */
export function bashCompletion(commands: readonly CommandSpec[]): string {
  return `# bash completion for myelin ${version()}, generated by \`myelin completion bash\` from its command table.
# Install: myelin completion bash > ~/.local/share/bash-completion/completions/myelin
#      or: echo 'source <(myelin completion bash)' >> ~/.bashrc

${sharedFunctions(commands)}

_myelin() {
  local line="\${COMP_LINE:0:COMP_POINT}" out kind cur IFS=$' \\t\\n'
  local -a words
  # Split the line ourselves: bash splits at ':' and '=' too (tcp://host:7447).
  read -r -a words <<< "$line"
  case "$line" in
    *[[:space:]]) words+=("") ;;
  esac
  [ \${#words[@]} -eq 0 ] && words=("myelin" "")
  cur="\${words[\${#words[@]}-1]}"
  out="$(_myelin_candidates "\${words[@]}")"
  kind="\${out%%$'\\n'*}"
  local IFS=$'\\n'
  case "$kind" in
    files)
      compopt -o filenames 2>/dev/null
      COMPREPLY=($(compgen -f -- "$cur")) ;;
    *)
      local list="\${out#"$kind"}"
      [ "$kind" = described ] && list="$(printf '%s\\n' "$list" | sed -e 's/\\([^\\\\]\\):.*/\\1/' -e 's/\\\\:/:/g')"
      COMPREPLY=($(compgen -W "$list" -- "$cur")) ;;
  esac
  # bash replaces only the part after the last ':' of the word: drop what is before it.
  if [[ "$cur" == *:* && "$COMP_WORDBREAKS" == *:* ]]; then
    local prefix="\${cur%"\${cur##*:}"}" i
    for i in "\${!COMPREPLY[@]}"; do COMPREPLY[i]="\${COMPREPLY[i]#"$prefix"}"; done
  fi
}
complete -F _myelin myelin
`;
}

/** The zsh completion script for `commands`. */
export function zshCompletion(commands: readonly CommandSpec[]): string {
  return `#compdef myelin
# zsh completion for myelin ${version()}, generated by \`myelin completion zsh\` from its command table.
# Install: myelin completion zsh > "\${fpath[1]}/_myelin"   (then start a new shell; compinit must run)
#      or: echo 'source <(myelin completion zsh)' >> ~/.zshrc   (after compinit)

${sharedFunctions(commands)}

_myelin() {
  local out kind
  local -a cands
  out="$(_myelin_candidates "\${words[@]:0:$CURRENT}")"
  cands=("\${(@f)out}")
  kind="\${cands[1]}"
  shift cands
  case "$kind" in
    files) _files ;;
    described) _describe -t myelin 'myelin' cands ;;
    *) (( \${#cands} )) && compadd -a cands ;;
  esac
}

if [ "$funcstack[1]" = "_myelin" ]; then
  _myelin "$@"
else
  compdef _myelin myelin
fi
`;
}

/** The `completion` command, listing `commands()` (the CLI's table, read when it runs). */
export function completionCommand(commands: () => readonly CommandSpec[]): CommandSpec {
  return {
    path: ["completion"],
    summary: "print a shell completion script (bash or zsh)",
    args: [{ name: "SHELL", help: "bash or zsh" }],
    options: {},
    details: [
      "The script completes commands, subcommands and options, and asks myelin (quietly) for topic, service,",
      "node, parameter and type names, using a --hub or --runtime-dir already on the line.",
      "",
      "Install for bash (needs the bash-completion package, or source it from ~/.bashrc):",
      "  myelin completion bash > ~/.local/share/bash-completion/completions/myelin",
      "  echo 'source <(myelin completion bash)' >> ~/.bashrc        # alternative",
      "Install for zsh (a directory of $fpath; compinit must run in ~/.zshrc):",
      '  myelin completion zsh > "${fpath[1]}/_myelin"',
      "  echo 'source <(myelin completion zsh)' >> ~/.zshrc          # alternative, after compinit",
      "Then open a new shell. Regenerate it after upgrading Myelin.",
    ],
    examples: [
      "myelin completion bash > ~/.local/share/bash-completion/completions/myelin",
      'myelin completion zsh > "${fpath[1]}/_myelin"',
    ],
    connects: false,
    async run(ctx, inv) {
      const shell = inv.positionals[0]!;
      if (shell === "bash") ctx.out(bashCompletion(commands()).trimEnd());
      else if (shell === "zsh") ctx.out(zshCompletion(commands()).trimEnd());
      else throw new UsageError(`completion: SHELL must be bash or zsh, got '${shell}'`, "completion");
      return 0;
    },
  };
}
