/**
 * `myelin keys`: this host's CURVE key pair and the keys it trusts (docs/security.md). Every tcp
 * link between hosts uses CURVE; a host admits only the keys listed here or in a site file.
 */
import { KeyStore } from "../transport/key-store.js";
import { boolOpt, strOpt, type CommandSpec, type Invocation, type OptionSpec } from "./common.js";

const KEYS_DIR_OPTION: Record<string, OptionSpec> = {
  "keys-dir": {
    type: "string",
    arg: "DIR",
    help: "the key directory (default: $MYELIN_KEYS_DIR, else $MYELIN_CONFIG_DIR/keys, else $XDG_CONFIG_HOME/myelin/keys, else ~/.config/myelin/keys)",
  },
};

function store(inv: Invocation): KeyStore {
  return new KeyStore(strOpt(inv, "keys-dir"));
}

/** `myelin keys init`. */
export const keysInitCommand: CommandSpec = {
  path: ["keys", "init"],
  summary: "create this host's CURVE key pair (in a 0700 directory, files 0600)",
  args: [],
  options: {
    ...KEYS_DIR_OPTION,
    force: {
      type: "boolean",
      help: "replace an existing pair (every peer must then trust the new public key)",
    },
  },
  details: [
    "Prints the public key: give it to the hosts that must admit this one (myelin keys trust NAME KEY there). The secret key never leaves host.key.",
  ],
  examples: [
    "myelin keys init",
    "MYELIN_KEYS_DIR=/etc/myelin/keys myelin keys init   # a system-wide hub's keys",
  ],
  connects: false,
  run(ctx, inv) {
    const s = store(inv);
    const pair = s.init(boolOpt(inv, "force"));
    ctx.out(pair.publicKey);
    ctx.err(`keys init: created ${s.dir}/host.key; the public key above is what other hosts trust`);
    return Promise.resolve(0);
  },
};

/** `myelin keys show`. */
export const keysShowCommand: CommandSpec = {
  path: ["keys", "show"],
  summary: "print this host's CURVE public key",
  args: [],
  options: { ...KEYS_DIR_OPTION },
  examples: ["myelin keys show", "ssh edge-1 myelin keys show   # the key to trust for edge-1"],
  connects: false,
  run(ctx, inv) {
    ctx.out(store(inv).hostKeys().publicKey);
    return Promise.resolve(0);
  },
};

/** `myelin keys trust`. */
export const keysTrustCommand: CommandSpec = {
  path: ["keys", "trust"],
  summary: "admit a host's or client's CURVE public key under a name (running hubs and nodes see it at once)",
  args: [
    { name: "NAME", help: "a name for the key (letters, digits, _ . -), e.g. the host name" },
    { name: "KEY", help: "the 40-character public key that `myelin keys show` printed there" },
  ],
  options: { ...KEYS_DIR_OPTION },
  details: [
    "Running hubs and nodes of this host admit the key at once: new handshakes, and connections cut when it was revoked. The names also serve MYELIN_HUB_KEY: a node may name its hub's key by the name trusted here.",
  ],
  examples: ["myelin keys trust edge-1 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'"],
  connects: false,
  run(ctx, inv) {
    const [name, key] = inv.positionals as [string, string];
    const s = store(inv);
    s.trust(name, key);
    ctx.out(`trusted ${name} ${key}`);
    return Promise.resolve(0);
  },
};

/** `myelin keys list`. */
export const keysListCommand: CommandSpec = {
  path: ["keys", "list"],
  summary: "list the trusted keys (the allow-list and the site files)",
  args: [],
  options: { ...KEYS_DIR_OPTION, json: { type: "boolean", help: "print JSON" } },
  details: [
    "The site files are <keys dir>/site.yaml and $MYELIN_SITE_KEYS: YAML lists of '- name: NAME' 'key: KEY' that one copies to every host of a site.",
  ],
  examples: ["myelin keys list", "myelin keys list --json"],
  connects: false,
  run(ctx, inv) {
    const all = store(inv).allTrusted();
    if (boolOpt(inv, "json")) {
      ctx.out(JSON.stringify(all, null, 2));
      return Promise.resolve(0);
    }
    if (all.length === 0) {
      ctx.out("no trusted keys (myelin keys trust NAME KEY adds one)");
      return Promise.resolve(0);
    }
    const w = Math.max(4, ...all.map((t) => t.name.length));
    ctx.out(`${"NAME".padEnd(w)}  ${"KEY".padEnd(40)}  SOURCE`);
    for (const t of all) ctx.out(`${t.name.padEnd(w)}  ${t.key}  ${t.source}`);
    return Promise.resolve(0);
  },
};

/** `myelin keys revoke`. */
export const keysRevokeCommand: CommandSpec = {
  path: ["keys", "revoke"],
  summary: "stop admitting a trusted key",
  args: [{ name: "NAME", help: "the name it was trusted under (myelin keys list)" }],
  options: { ...KEYS_DIR_OPTION },
  details: [
    "Takes effect on running hubs and nodes of this host without a restart, within about a second (they watch the key directory; SIGHUP to the hub checks at once): new handshakes with the key are refused, messages on its connections already up are dropped both ways, its nodes leave the hub's graph, and a link to a peer hub under that key is closed. ZeroMQ cannot close one peer of a listening socket, so the revoked peer's TCP connection to a listener stays open but carries nothing. Trusting the key again restores it without restarts.",
  ],
  examples: ["myelin keys revoke edge-1"],
  connects: false,
  run(ctx, inv) {
    const removed = store(inv).revoke(inv.positionals[0]!);
    ctx.out(`revoked ${removed.name} ${removed.key}`);
    return Promise.resolve(0);
  },
};
