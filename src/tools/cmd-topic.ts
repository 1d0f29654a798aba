/** `myelin topic list|info|find|echo|pub|hz|read|config`: look at and take part in topics. */
import { MyelinError, ServiceError, TypeMismatchError } from "../errors.js";
import { lookupType, type MessageType } from "../msgs/index.js";
import { fetchUplinkStatus, UPLINK_PROTOCOL, type ForwarderStatus } from "../gateway/index.js";
import { msgpackCodec, toJson } from "../codec/index.js";
import {
  fetchNodeStatus,
  statusProtocol,
  graphServes,
  PROCESS_ID,
  STORE_PROTOCOL,
  StoreClient,
  type GraphSnapshot,
  type Node,
  type Publisher,
  type Qos,
  type StoreProtocol,
} from "../node/index.js";
import {
  absName,
  boolOpt,
  messageFromData,
  numOpt,
  pause,
  resolveMessageType,
  strOpt,
  topicsOf,
  typeSpellings,
  UsageError,
  unknownTopic,
  unlessInterrupted,
  waitForTopic,
  withNode,
  type CommandSpec,
  type Context,
  type Endpoint,
  type TopicView,
} from "./common.js";
import { describeQos, didYouMean, renderMessage, table } from "./format.js";

// ---- list / info -----------------------------------------------------------------------------

function topicJson(t: TopicView): Record<string, unknown> {
  const ep = (e: Endpoint): unknown => ({
    node: e.node,
    id: e.id,
    pid: e.pid,
    host: e.host,
    qos: e.decl.qos,
  });
  return {
    topic: t.topic,
    type: t.type,
    publishers: t.publishers.map(ep),
    subscribers: t.subscribers.map(ep),
  };
}

export const topicListCommand: CommandSpec = {
  path: ["topic", "list"],
  summary: "list the topics nodes publish or subscribe",
  args: [],
  options: {
    "show-types": {
      type: "boolean",
      short: "t",
      help: "show a table with each topic's type and publisher/subscriber counts",
    },
    json: {
      type: "boolean",
      help: "print a JSON array: topic, type, publishers, subscribers (with node and QoS)",
    },
  },
  examples: ["myelin topic list", "myelin topic list -t", "myelin topic list --json"],
  connects: true,
  async run(ctx, inv) {
    return withNode(ctx, inv, "topic_list", async (_node, graph) => {
      const topics = topicsOf(graph);
      if (boolOpt(inv, "json")) {
        ctx.out(JSON.stringify(topics.map(topicJson), null, 2));
        return 0;
      }
      if (topics.length === 0) {
        ctx.err("no topics: no node publishes or subscribes anything");
        return 0;
      }
      if (!boolOpt(inv, "show-types")) {
        for (const t of topics) ctx.out(t.topic);
        return 0;
      }
      const rows = topics.map((t) => [
        t.topic,
        t.type,
        String(t.publishers.length),
        String(t.subscribers.length),
      ]);
      for (const l of table(["TOPIC", "TYPE", "PUBS", "SUBS"], rows)) ctx.out(l);
      return 0;
    });
  },
};

/** The `--host` option of the commands that read or change the durable store. */
const STORE_HOST_OPTION = {
  type: "string",
  arg: "HOST",
  help: "use the store of this host of the site (names as `myelin site status` shows them; default: this host's)",
} as const;

export const topicInfoCommand: CommandSpec = {
  path: ["topic", "info"],
  summary: "show a topic's type, publishers and subscribers with their QoS",
  args: [{ name: "TOPIC", help: "topic name, e.g. /chatter" }],
  options: {
    json: { type: "boolean", help: "print one JSON object: topic, type, publishers, subscribers" },
    host: STORE_HOST_OPTION,
  },
  examples: [
    "myelin topic info /chatter",
    "myelin topic info /camera/front/image --json",
    "myelin topic info /alerts --host edge2",
  ],
  connects: true,
  async run(ctx, inv) {
    const topic = absName(inv.positionals[0]!);
    return withNode(ctx, inv, "topic_info", async (node, graph) => {
      const t = topicsOf(graph).find((x) => x.topic === topic);
      const durable = await durableInfo(node, graph, topic, strOpt(inv, "host"));
      if (t === undefined && durable === undefined) throw unknownTopic(topic, graph);
      const flow = t === undefined ? [] : await flowLines(node, graph, t);
      const uplink = durable !== undefined ? await uplinkForwarder(node, graph, topic) : undefined;
      if (boolOpt(inv, "json")) {
        ctx.out(
          JSON.stringify(
            {
              ...(t !== undefined ? topicJson(t) : { topic, type: durable!.type }),
              durable: durable ?? null,
              flow,
              unreachable: unreachableOn(graph, topic),
              uplink: uplink ?? null,
            },
            null,
            2,
          ),
        );
        return 0;
      }
      ctx.out(`Topic: ${topic}`);
      ctx.out(`Type: ${t?.type ?? durable!.type}`);
      const list = (title: string, eps: Endpoint[]): void => {
        ctx.out(`${title}: ${eps.length}`);
        for (const e of eps) {
          const mismatch = e.decl.type !== t!.type ? ` [type ${e.decl.type}]` : "";
          ctx.out(`  ${e.node} (pid ${e.pid} on ${e.host}): ${describeQos(e.decl.qos)}${mismatch}`);
        }
      };
      if (t !== undefined) {
        list("Publishers", t.publishers);
        list("Subscribers", t.subscribers);
        for (const u of unreachableOn(graph, topic)) ctx.out(`  ! ${u}`);
      }
      if (flow.length > 0) {
        ctx.out("Flow (from the nodes' status):");
        for (const f of flow) ctx.out(`  ${f.line}`);
      }
      if (durable !== undefined) {
        ctx.out(
          `Durable: sequence ${durable.first_seq}..${durable.last_seq}, ${durable.count} messages, ${durable.bytes} bytes on disk`,
        );
        if (durable.config_json !== "") ctx.out(`Durable settings: ${describeSettings(durable.config_json)}`);
        ctx.out(`Durable consumers: ${durable.consumers.length}`);
        durable.consumers.forEach((name, i) =>
          ctx.out(
            `  ${name}: lag ${durable.lags[i]}, unacknowledged ${durable.pending[i]}, dead-lettered ${durable.dead_lettered[i]}`,
          ),
        );
      }
      if (uplink !== undefined) {
        ctx.out(
          `Uplink: forwarded up to ${uplink.forwarded} → ${uplink.subject}; lag ${uplink.lagMessages} messages, ${uplink.lagBytes} B, oldest ${Math.round(uplink.lagAgeMs / 1000)} s${uplink.lostToRetention > 0 ? `; ${uplink.lostToRetention} lost to retention` : ""}${uplink.alarm ? " (ALARM: near the retention limit)" : ""}`,
        );
      }
      return 0;
    });
  },
};

/**
 * What the nodes on topic `t` report about it (their `/_status/<node>`): per subscription its
 * deadline, deadlines missed, silence and losses; per remote subscriber of a publisher its backlog,
 * waits and drops. A node that serves no status or does not answer within 1.5 s is left out.
 */
async function flowLines(
  node: Node,
  graph: GraphSnapshot,
  t: TopicView,
): Promise<{ node: string; kind: "subscription" | "subscriber"; line: string; [k: string]: unknown }[]> {
  const names = new Map(graph.nodes.map((n) => [n.id, n.name]));
  const nodes = new Set([...t.publishers, ...t.subscribers].map((e) => e.node));
  const out: { node: string; kind: "subscription" | "subscriber"; line: string; [k: string]: unknown }[] = [];
  await Promise.all(
    [...nodes].map(async (name) => {
      const service = statusProtocol(name).status.service;
      if (!graph.nodes.some((n) => n.name === name && n.services.some((s) => s.service === service))) return;
      const st = await fetchNodeStatus(node, name, { timeoutMs: 1500 }).catch(() => undefined);
      for (const s of st?.subscriptions ?? []) {
        if (s.topic !== t.topic) continue;
        const deadline =
          s.deadlineMs > 0
            ? `deadline ${s.deadlineMs} ms, ${s.deadlinesMissed} missed, silent ${(s.silentMs / 1000).toFixed(1)} s${s.silentMs > s.deadlineMs ? " (LATE)" : ""}; `
            : "";
        out.push({
          ...s,
          node: name,
          kind: "subscription",
          line: `${name} receives: ${deadline}${s.received} received, ${s.dropped} lost, ${s.pending} queued`,
        });
      }
      for (const p of st?.publishers ?? []) {
        if (p.topic !== t.topic) continue;
        for (const r of p.subscribers) {
          const sub = names.get(r.node) ?? r.node;
          out.push({
            ...r,
            node: name,
            kind: "subscriber",
            publisher: p.id,
            subscriber: sub,
            line: `${p.id} → ${sub}: ${r.reliable ? "reliable" : "best-effort"}, backlog ${r.backlog} (${r.backlogBytes} bytes), publish waited ${r.waits}×, dropped ${r.dropped}`,
          });
        }
      }
    }),
  );
  return out.sort((a, b) => a.line.localeCompare(b.line));
}

/** Subscribers of `topic` that say they cannot reach one of its publishers, for people. */
function unreachableOn(graph: GraphSnapshot, topic: string): string[] {
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const out: string[] = [];
  for (const n of graph.nodes) {
    if (!n.subs.some((d) => d.topic === topic)) continue;
    for (const u of n.unreachable ?? []) {
      const pub = byId.get(u.node);
      if (pub === undefined || !pub.pubs.some((d) => d.topic === topic)) continue;
      out.push(
        `subscriber ${n.name} (on ${n.host}) cannot reach publisher ${pub.name} (on ${pub.host}) at ${u.endpoint}: ${u.reason}`,
      );
    }
  }
  return out;
}

/** `myelin topic find TYPE`: the topics of a message type, from the graph. */
export const topicFindCommand: CommandSpec = {
  path: ["topic", "find"],
  summary: "list the topics that carry a message type",
  args: [{ name: "TYPE", help: "message type, e.g. sensor_msgs/Image (also sensor_msgs/msg/Image)" }],
  options: {
    "count-topics": { type: "boolean", short: "c", help: "print only the number of topics found" },
    json: {
      type: "boolean",
      help: "print a JSON array: topic, type, publishers, subscribers (with node and QoS)",
    },
  },
  details: [
    "Looks in the hub's graph (every topic some node publishes or subscribes); the type need not be known here.",
    "Finding nothing is not an error: the command prints nothing (and says so on stderr) and exits 0.",
  ],
  examples: [
    "myelin topic find sensor_msgs/Image",
    "myelin topic find std_msgs/msg/String -c",
    "myelin topic find geometry_msgs/Twist --json",
  ],
  connects: true,
  async run(ctx, inv) {
    const typeArg = inv.positionals[0]!;
    const names = typeSpellings(typeArg);
    return withNode(ctx, inv, "topic_find", async (_node, graph) => {
      const all = topicsOf(graph);
      const found = all.filter((t) => names.includes(t.type));
      if (boolOpt(inv, "json")) ctx.out(JSON.stringify(found.map(topicJson), null, 2));
      else if (boolOpt(inv, "count-topics")) ctx.out(String(found.length));
      else for (const t of found) ctx.out(t.topic);
      if (found.length === 0 && !boolOpt(inv, "json")) {
        const types = [...new Set(all.map((t) => t.type))].sort();
        ctx.err(
          `no topic carries ${typeArg}${didYouMean(names.at(-1)!, types)}; types in use: ${types.join(", ") || "none"}`,
        );
      }
      return 0;
    });
  },
};

/**
 * Throws unless a store serves `service`: the store of `host` when one is named, else any.
 * @throws MyelinError ERR_NO_SERVER naming the fix (and the hosts that run a store)
 */
function requireStore(graph: GraphSnapshot, method: keyof StoreProtocol, host?: string): void {
  const service = STORE_PROTOCOL[method].service;
  const serving = graph.nodes.filter((n) => n.services.some((d) => d.service === service));
  if (host === undefined) {
    if (serving.length > 0) return;
    throw new ServiceError(
      "ERR_NO_SERVER",
      "no store runs with the hub: durable topics need `myelin hub` with its store (the default)",
    );
  }
  if (serving.some((n) => n.host === host)) return;
  const hosts = [...new Set(serving.map((n) => n.host))].sort();
  const known = graph.nodes.some((n) => n.host === host);
  throw new ServiceError(
    "ERR_NO_SERVER",
    `${known ? `host ${host} runs no store` : `no host named ${host} is in the site`}: ` +
      (hosts.length > 0
        ? `hosts with a store: ${hosts.join(", ")} (see \`myelin site status\`)`
        : "no host of the site runs a store; start `myelin hub` without --no-store"),
  );
}

/**
 * An unknown durable topic in this host's store, in a site where other hosts run stores too: the
 * same error, saying that each host keeps its own store and naming `--host`.
 */
function withOtherStores(err: unknown, graph: GraphSnapshot, self: string): unknown {
  if (!(err instanceof MyelinError) || err.code !== "ERR_UNKNOWN_TOPIC") return err;
  const service = STORE_PROTOCOL.read.service;
  const others = [
    ...new Set(
      graph.nodes
        .filter((n) => n.host !== self && n.services.some((d) => d.service === service))
        .map((n) => n.host),
    ),
  ].sort();
  if (others.length === 0) return err;
  return new MyelinError(
    "ERR_UNKNOWN_TOPIC",
    `${err.message} (in the store of host ${self}); each host of the site keeps its own store and a ` +
      `message is stored on its publisher's host: add --host H for one of ${others.join(", ")}`,
  );
}

/** One line for a durable topic's settings (the store's JSON). */
function describeSettings(json: string): string {
  const c = JSON.parse(json) as {
    mode: string;
    retention: { maxMessages?: number; maxBytes?: number; maxAgeMs?: number };
    fsync: string;
    batchMs: number;
    dedupWindowMs: number;
  };
  const r = c.retention;
  const limits = [
    r.maxMessages !== undefined ? `${r.maxMessages} messages` : "",
    r.maxBytes !== undefined ? `${r.maxBytes} bytes` : "",
    r.maxAgeMs !== undefined ? `${formatDurationMs(r.maxAgeMs)} old` : "",
  ].filter((x) => x !== "");
  return [
    c.mode === "work-queue" ? "work queue (acknowledged messages removed)" : "limits",
    `retention ${limits.length > 0 ? limits.join(", ") : "unlimited"}`,
    `fsync ${c.fsync}${c.fsync === "batch" ? ` (${c.batchMs} ms)` : ""}`,
    `dedup window ${c.dedupWindowMs > 0 ? formatDurationMs(c.dedupWindowMs) : "off"}`,
  ].join("; ");
}

/** The uplink's forwarder of a durable topic, when an uplink runs and forwards it. */
async function uplinkForwarder(
  node: Node,
  graph: GraphSnapshot,
  topic: string,
): Promise<ForwarderStatus | undefined> {
  if (!graphServes(graph, UPLINK_PROTOCOL.status)) return undefined;
  const s = await fetchUplinkStatus(node, { timeoutMs: 3000 }).catch(() => undefined);
  return s?.forwarders.find((f) => f.topic === topic);
}

/** The store's view of a durable topic, when a store runs and knows the topic. */
async function durableInfo(node: Node, graph: GraphSnapshot, topic: string, host?: string) {
  if (host !== undefined) requireStore(graph, "info", host);
  else if (!graphServes(graph, STORE_PROTOCOL.info)) return undefined;
  const info = await new StoreClient(node, { timeoutMs: 3000, ...(host !== undefined ? { host } : {}) }).info(
    {
      topic,
    },
  );
  return info.exists ? info : undefined;
}

// ---- echo ------------------------------------------------------------------------------------

/** QoS a tool subscribes with: what the user asked, and transient-local if a publisher keeps history. */
export function toolQos(t: TopicView, bestEffort: boolean): Partial<Qos> {
  const q: Partial<Qos> = { reliability: bestEffort ? "best-effort" : "reliable" };
  const keeping = t.publishers.filter((p) => p.decl.qos.durability === "transient-local");
  if (keeping.length > 0) {
    q.durability = "transient-local";
    q.depth = Math.max(...keeping.map((p) => p.decl.qos.depth));
  }
  return q;
}

function jsonOf(type: MessageType<unknown> | undefined, msg: unknown): unknown {
  try {
    return toJson(type, msg);
  } catch {
    return toJson(undefined, msg);
  }
}

/** The `--wait-ms` option of the commands that subscribe to a topic. */
export const WAIT_OPTION = {
  type: "string",
  arg: "N",
  help: "wait up to N ms for the topic to appear (default 5000)",
} as const;

export const topicEchoCommand: CommandSpec = {
  path: ["topic", "echo"],
  summary: "print the messages of a topic",
  args: [
    { name: "TOPIC", help: "topic name; its type comes from the graph (the topic's publishers)" },
    {
      name: "TYPE",
      help: "the topic's type, e.g. std_msgs/String: subscribe at once, before any publisher exists",
      optional: true,
    },
  ],
  options: {
    count: {
      type: "string",
      short: "n",
      arg: "N",
      help: "exit after N messages (default: run until Ctrl-C)",
    },
    json: {
      type: "boolean",
      help: 'one JSON object per line: {"topic","seq","publisher","stamp","msg"} (msg in the JSON form of the codec)',
    },
    "best-effort": {
      type: "boolean",
      help: "subscribe best-effort (never slows the publisher down; may drop)",
    },
    "no-validate": {
      type: "boolean",
      help: "do not check messages against the schema (show whatever arrives)",
    },
    "wait-ms": WAIT_OPTION,
    "max-array": {
      type: "string",
      arg: "N",
      help: "show at most N elements of an array (default 32; human output)",
    },
  },
  details: [
    "Messages are shown YAML-like and separated by ---: bytes fields as <N bytes> with a hex preview, long arrays cut.",
    "A topic whose publishers keep history (transient-local) is read from its history first.",
  ],
  examples: [
    "myelin topic echo /chatter",
    "myelin topic echo /odom --count 1",
    "myelin topic echo /sensors/k1/temperature sensor_msgs/Temperature   # waits for the first publisher",
    "myelin topic echo /camera/front/image --json --best-effort | jq .msg.header",
  ],
  connects: true,
  async run(ctx, inv) {
    const topic = absName(inv.positionals[0]!);
    const count = numOpt(inv, "count", { min: 1, integer: true, command: "topic echo" }) ?? Infinity;
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: "topic echo" }) ?? 5000;
    const maxArray = numOpt(inv, "max-array", { min: 0, integer: true, command: "topic echo" }) ?? 32;
    const json = boolOpt(inv, "json");
    const typeArg = inv.positionals[1];
    if (typeArg !== undefined) resolveMessageType(typeArg);
    return withNode(ctx, inv, "topic_echo", async (node, graph) => {
      const view =
        typeArg !== undefined
          ? (topicsOf(graph).find((t) => t.topic === topic) ?? {
              topic,
              type: typeArg,
              publishers: [],
              subscribers: [],
            })
          : await waitForTopic(ctx, node, graph, topic, waitMs);
      if (typeArg !== undefined && view.type !== typeArg) {
        throw new TypeMismatchError(
          "ERR_TYPE_MISMATCH",
          `topic ${topic} has type ${view.type}, not ${typeArg}; leave TYPE out to use the topic's own`,
        );
      }
      const type = lookupType(view.type);
      if (type === undefined && !json) {
        ctx.err(
          `myelin: type ${view.type} is not known here; showing raw values (load it with --import MODULE)`,
        );
      }
      let failure: Error | undefined;
      const sub = await node.createSubscription<unknown>(topic, view.type, undefined, {
        qos: toolQos(view, boolOpt(inv, "best-effort")),
        validate: !boolOpt(inv, "no-validate"),
      });
      sub.on("invalid", (err) => ctx.err(`myelin: dropped a message: ${err.message}`));
      sub.on("refused", (err) => {
        failure = err;
        sub.close();
      });
      const onAbort = (): void => sub.close();
      ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        let n = 0;
        for await (const { msg, info } of sub) {
          if (json) {
            ctx.out(
              JSON.stringify({
                topic,
                seq: info.seq,
                publisher: info.publisher,
                stamp: info.sourceTime,
                msg: jsonOf(type, msg),
              }),
            );
          } else {
            for (const l of renderMessage(msg, type, { maxArray })) ctx.out(l);
            ctx.out("---");
          }
          if (++n >= count) break;
        }
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        sub.close();
      }
      if (failure !== undefined) throw failure;
      return 0;
    });
  },
};

// ---- pub -------------------------------------------------------------------------------------

/** Subscriptions in other processes that should connect to `topic` of type `typeName`. */
function expectedSubscribers(g: GraphSnapshot, topic: string, typeName: string): number {
  let n = 0;
  for (const node of g.nodes) {
    if (node.process === PROCESS_ID) continue;
    for (const s of node.subs) if (s.topic === topic && s.type === typeName) n++;
  }
  return n;
}

/**
 * Waits until a subscriber is matched: the graph shows one, and its subscription has reached the
 * publisher. Gives up (quietly) at `deadline`.
 */
async function waitForSubscribers(
  ctx: Context,
  node: Node,
  pub: Publisher<unknown>,
  deadline: number,
): Promise<void> {
  const want = (g: GraphSnapshot): number => expectedSubscribers(g, pub.topic, pub.type.name);
  let g: GraphSnapshot;
  try {
    g = await unlessInterrupted(
      node.waitForGraph((x) => want(x) > 0, Math.max(1, deadline - Date.now())),
      ctx.signal,
    );
  } catch (err) {
    if (err instanceof MyelinError && err.code === "ERR_TIMEOUT") return;
    throw err;
  }
  // The graph tells who subscribes; the subscriber then connects to this node.
  try {
    await unlessInterrupted(pub.waitForSubscribers(want(g), Math.max(1, deadline - Date.now())), ctx.signal);
  } catch (err) {
    if (err instanceof MyelinError && err.code === "ERR_TIMEOUT") return;
    throw err;
  }
}

export const topicPubCommand: CommandSpec = {
  path: ["topic", "pub"],
  summary: "publish a message to a topic, once or at a rate",
  args: [
    { name: "TOPIC", help: "topic name, e.g. /chatter" },
    { name: "TYPE", help: "message type, e.g. std_msgs/String (also std_msgs/msg/String)" },
    {
      name: "DATA",
      optional: true,
      help: "the message as JSON or YAML, e.g. '{data: hello}'; missing fields get their defaults (default {})",
    },
  ],
  options: {
    rate: {
      type: "string",
      short: "r",
      arg: "HZ",
      help: "publish HZ times a second until Ctrl-C or --count",
    },
    count: {
      type: "string",
      short: "n",
      arg: "N",
      help: "publish N messages (default 1 without --rate, unlimited with)",
    },
    "qos-transient-local": {
      type: "boolean",
      help: "keep the last message for late subscribers while this command runs (depth 1)",
    },
    persistent: {
      type: "boolean",
      help: "store each message in the hub's durable store first (needs a hub with a store); exits 1 if it cannot",
    },
    "best-effort": { type: "boolean", help: "publish best-effort" },
    "wait-ms": {
      type: "string",
      arg: "N",
      help: "before the first message, wait up to N ms for a subscriber to be matched (default 1000)",
    },
    "keep-alive-ms": {
      type: "string",
      arg: "N",
      help: "stay up N ms after the last message so it is delivered (and served to late joiners) (default 200)",
    },
    quiet: { type: "boolean", short: "q", help: "do not print each message" },
  },
  examples: [
    "myelin topic pub /chatter std_msgs/String '{data: hello}'",
    "myelin topic pub /cmd_vel geometry_msgs/Twist '{linear: {x: 0.5}, angular: {z: 0.2}}' --rate 10",
    "myelin topic pub /map_ready std_msgs/Bool 'data: true' --qos-transient-local --keep-alive-ms 10000",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "topic pub";
    const topic = absName(inv.positionals[0]!);
    const type = resolveMessageType(inv.positionals[1]!);
    const msg = messageFromData(type, inv.positionals[2] ?? "{}", `DATA for ${type.name}`);
    const rate = numOpt(inv, "rate", { min: 0.001, max: 1e6, command: cmd });
    const count =
      numOpt(inv, "count", { min: 1, integer: true, command: cmd }) ?? (rate === undefined ? 1 : Infinity);
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: cmd }) ?? 1000;
    const keepAliveMs = numOpt(inv, "keep-alive-ms", { min: 0, integer: true, command: cmd }) ?? 200;
    const quiet = boolOpt(inv, "quiet");
    const qos: Partial<Qos> = { reliability: boolOpt(inv, "best-effort") ? "best-effort" : "reliable" };
    if (boolOpt(inv, "qos-transient-local")) Object.assign(qos, { durability: "transient-local", depth: 1 });
    if (boolOpt(inv, "persistent")) Object.assign(qos, { durability: "persistent" });
    const shown = JSON.stringify(jsonOf(type, msg));

    return withNode(ctx, inv, "topic_pub", async (node) => {
      const pub = await node.createPublisher(topic, type, { qos });
      const deadline = Date.now() + waitMs;
      if (waitMs > 0) await waitForSubscribers(ctx, node, pub, deadline);
      const periodMs = rate === undefined ? 0 : 1000 / rate;
      const start = performance.now();
      let sent = 0;
      while (sent < count && !ctx.signal.aborted) {
        await unlessInterrupted(pub.publish(msg), ctx.signal).catch((err: unknown) => {
          if (!ctx.signal.aborted) throw err;
        });
        if (ctx.signal.aborted) break;
        sent++;
        if (!quiet) ctx.out(`publishing #${sent} to ${topic}: ${shown}`);
        if (sent >= count || periodMs === 0) continue;
        const next = start + sent * periodMs;
        if (!(await pause(Math.max(0, next - performance.now()), ctx.signal))) break;
      }
      if (sent > 0 && keepAliveMs > 0) await pause(keepAliveMs, ctx.signal);
      pub.close();
      return 0;
    });
  },
};

// ---- hz --------------------------------------------------------------------------------------

/** Statistics of message periods, like `ros2 topic hz`. */
export interface RateReport {
  topic: string;
  /** Messages per second over the window. */
  rate: number;
  /** Shortest, longest period and its standard deviation, in seconds. */
  min: number;
  max: number;
  stdDev: number;
  /** Periods in the window. */
  window: number;
  /** Messages received since the start. */
  received: number;
}

/** Computes a RateReport from arrival times `t` (ms, ascending). Undefined with fewer than two. */
export function rateOf(topic: string, t: readonly number[], received: number): RateReport | undefined {
  if (t.length < 2) return undefined;
  const periods: number[] = [];
  for (let i = 1; i < t.length; i++) periods.push((t[i]! - t[i - 1]!) / 1000);
  const mean = periods.reduce((a, b) => a + b, 0) / periods.length;
  const variance = periods.reduce((a, p) => a + (p - mean) ** 2, 0) / periods.length;
  return {
    topic,
    rate: mean > 0 ? 1 / mean : Infinity,
    min: Math.min(...periods),
    max: Math.max(...periods),
    stdDev: Math.sqrt(variance),
    window: periods.length,
    received,
  };
}

export const topicHzCommand: CommandSpec = {
  path: ["topic", "hz"],
  summary: "print the rate of a topic every second",
  args: [{ name: "TOPIC", help: "topic name" }],
  options: {
    window: {
      type: "string",
      short: "w",
      arg: "N",
      help: "compute over the last N messages (default 10000)",
    },
    "count-reports": { type: "string", arg: "N", help: "exit after N reports (default: run until Ctrl-C)" },
    json: {
      type: "boolean",
      help: 'one JSON object per report: {"topic","rate","min","max","stdDev","window","received"} (seconds)',
    },
    "best-effort": { type: "boolean", help: "subscribe best-effort" },
    "wait-ms": WAIT_OPTION,
  },
  examples: [
    "myelin topic hz /camera/front/image",
    "myelin topic hz /imu --window 100 --count-reports 5 --json",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "topic hz";
    const topic = absName(inv.positionals[0]!);
    const windowSize = numOpt(inv, "window", { min: 2, integer: true, command: cmd }) ?? 10000;
    const reports = numOpt(inv, "count-reports", { min: 1, integer: true, command: cmd }) ?? Infinity;
    const waitMs = numOpt(inv, "wait-ms", { min: 0, integer: true, command: cmd }) ?? 5000;
    const json = boolOpt(inv, "json");
    return withNode(ctx, inv, "topic_hz", async (node, graph) => {
      const view = await waitForTopic(ctx, node, graph, topic, waitMs);
      // A ring of the last windowSize + 1 arrival times gives windowSize periods.
      const ring = new Float64Array(windowSize + 1);
      let head = 0;
      let size = 0;
      let received = 0;
      let lastReported = 0;
      const sub = await node.createSubscription<unknown>(
        topic,
        view.type,
        () => {
          ring[head] = performance.now();
          head = (head + 1) % ring.length;
          if (size < ring.length) size++;
          received++;
        },
        { qos: toolQos(view, boolOpt(inv, "best-effort")), validate: false },
      );
      let done = 0;
      try {
        while (done < reports && (await pause(1000, ctx.signal))) {
          done++;
          const times: number[] = [];
          for (let i = 0; i < size; i++) times.push(ring[(head - size + i + ring.length) % ring.length]!);
          const r = received === lastReported ? undefined : rateOf(topic, times, received);
          lastReported = received;
          if (json) {
            ctx.out(JSON.stringify(r ?? { topic, rate: 0, received }));
          } else if (r === undefined) {
            ctx.out(received === 0 ? "no messages yet" : "no new messages");
          } else {
            ctx.out(`average rate: ${r.rate.toFixed(3)}`);
            ctx.out(
              `\tmin: ${r.min.toFixed(3)}s max: ${r.max.toFixed(3)}s std dev: ${r.stdDev.toFixed(5)}s window: ${r.window}`,
            );
          }
        }
      } finally {
        sub.close();
      }
      return 0;
    });
  },
};

// ---- read (durable topics) -------------------------------------------------------------------

export const topicReadCommand: CommandSpec = {
  path: ["topic", "read"],
  summary: "print a range of a durable topic from the hub's store (replay, inspection)",
  args: [{ name: "TOPIC", help: "durable topic name, e.g. /alerts" }],
  options: {
    from: { type: "string", arg: "SEQ", help: "first sequence number to print (default 1)" },
    "from-time": {
      type: "string",
      arg: "TIME",
      help: "start at the first message stored at or after TIME (ISO 8601, or ms since the epoch)",
    },
    count: {
      type: "string",
      short: "n",
      arg: "N",
      help: "print at most N messages (default 10, at most 10000)",
    },
    json: { type: "boolean", help: "one JSON object per line: topic, seq, stamp (ms), msg" },
    host: STORE_HOST_OPTION,
  },
  details: [
    "Reads without a consumer: nothing is acknowledged, no consumer's progress changes.",
    "In a site each host's hub keeps its own store, and a message is stored on its publisher's",
    "host: --host H reads the store of host H.",
  ],
  examples: [
    "myelin topic read /alerts",
    "myelin topic read /alerts --host edge2",
    "myelin topic read /alerts --from 100 --count 50 --json",
    "myelin topic read /alerts --from-time 2026-11-22T10:00:00Z",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "topic read";
    const topic = absName(inv.positionals[0]!);
    const from = numOpt(inv, "from", { min: 1, integer: true, command: cmd }) ?? 1;
    const count = numOpt(inv, "count", { min: 1, integer: true, command: cmd }) ?? 10;
    const timeText = strOpt(inv, "from-time");
    let fromTime = 0;
    if (timeText !== undefined) {
      fromTime = /^\d+$/.test(timeText) ? Number(timeText) : Date.parse(timeText);
      if (!Number.isFinite(fromTime)) {
        throw new UsageError(
          `topic read: --from-time '${timeText}' is neither ISO 8601 nor ms since the epoch`,
        );
      }
    }
    return withNode(ctx, inv, "topic_read", async (node, graph) => {
      const host = strOpt(inv, "host");
      requireStore(graph, "read", host);
      const r = await new StoreClient(node, { timeoutMs: 10000, ...(host !== undefined ? { host } : {}) })
        .read({ topic, from_seq: from, from_time_ms: fromTime, max: Math.min(count, 10000) })
        .catch((err: unknown) => {
          throw host === undefined ? withOtherStores(err, graph, node.host) : err;
        });
      const type = lookupType(r.type);
      const json = boolOpt(inv, "json");
      for (let i = 0; i < r.seqs.length; i++) {
        let msg: unknown;
        try {
          msg = msgpackCodec.decode(r.payloads[i]!);
        } catch (err) {
          ctx.err(`#${r.seqs[i]}: not decodable: ${(err as Error).message}`);
          continue;
        }
        if (json) {
          ctx.out(JSON.stringify({ topic, seq: r.seqs[i], stamp: r.timestamps[i], msg: toJson(type, msg) }));
        } else {
          ctx.out(`# ${topic} #${r.seqs[i]} stored ${new Date(r.timestamps[i]!).toISOString()}`);
          for (const l of renderMessage(msg, type)) ctx.out(l);
          ctx.out("---");
        }
      }
      if (r.seqs.length === 0) ctx.err(`no messages in ${topic} from ${timeText ?? `#${from}`}`);
      return 0;
    });
  },
};

// ---- config (durable topics) -----------------------------------------------------------------

export const topicConfigCommand: CommandSpec = {
  path: ["topic", "config"],
  summary: "show or change a durable topic's settings: retention, work-queue mode, fsync, dedup window",
  args: [{ name: "TOPIC", help: "durable topic name, e.g. /orders" }],
  options: {
    "max-messages": {
      type: "string",
      arg: "N",
      help: "keep at most about N messages ('none' lifts the limit)",
    },
    "max-bytes": {
      type: "string",
      arg: "N",
      help: "keep at most about N bytes on disk ('none' lifts the limit)",
    },
    "max-age": {
      type: "string",
      arg: "DUR",
      help: "remove messages older than DUR, e.g. 7d, 12h, 30m ('none' lifts it)",
    },
    mode: {
      type: "string",
      arg: "MODE",
      help: "limits, or work-queue: a message goes once every consumer acknowledged it",
    },
    fsync: { type: "string", arg: "POLICY", help: "always, batch or never (see `myelin hub --help`)" },
    "batch-ms": { type: "string", arg: "N", help: "group-commit bound for fsync batch, in ms" },
    "dedup-window": {
      type: "string",
      arg: "DUR",
      help: "a message id seen within DUR is stored once, e.g. 2m; 0 turns it off",
    },
    type: {
      type: "string",
      arg: "TYPE",
      help: "create the topic with this message type if it does not exist yet",
    },
    json: { type: "boolean", help: "print the effective settings as JSON" },
    host: STORE_HOST_OPTION,
  },
  details: [
    "With no setting given, prints the topic's effective settings. Settings apply at once, are kept",
    "with the topic across hub restarts, and override the hub's --store-config for this topic.",
    "Retention deletes whole old segment files, so a limit is met to within one segment (64 MiB).",
  ],
  examples: [
    "myelin topic config /orders",
    "myelin topic config /telemetry --max-age 7d --max-bytes 10000000000",
    "myelin topic config /jobs --mode work-queue",
    "myelin topic config /alerts --max-messages none --dedup-window 10m",
    "myelin topic config /telemetry --host edge2 --max-age 1d",
  ],
  connects: true,
  async run(ctx, inv) {
    const cmd = "topic config";
    const topic = absName(inv.positionals[0]!);
    const change: Record<string, unknown> = {};
    const retention: Record<string, number | null> = {};
    const limit = (opt: string, key: string, parse: (v: string) => number): void => {
      const v = strOpt(inv, opt);
      if (v === undefined) return;
      retention[key] = v === "none" ? null : parse(v);
    };
    const count = (opt: string) => (v: string) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 1)
        throw new UsageError(`${cmd}: --${opt} must be an integer >= 1 or 'none', got '${v}'`);
      return n;
    };
    limit("max-messages", "maxMessages", count("max-messages"));
    limit("max-bytes", "maxBytes", count("max-bytes"));
    limit("max-age", "maxAgeMs", (v) => durationOpt(cmd, "max-age", v, 1));
    if (Object.keys(retention).length > 0) change["retention"] = retention;
    const mode = strOpt(inv, "mode");
    if (mode !== undefined) {
      if (mode !== "limits" && mode !== "work-queue")
        throw new UsageError(`${cmd}: --mode must be limits or work-queue, got '${mode}'`);
      change["mode"] = mode;
    }
    const fsync = strOpt(inv, "fsync");
    if (fsync !== undefined) {
      if (!["always", "batch", "never"].includes(fsync))
        throw new UsageError(`${cmd}: --fsync must be always, batch or never, got '${fsync}'`);
      change["fsync"] = fsync;
    }
    const batchMs = numOpt(inv, "batch-ms", { min: 0, integer: true, command: cmd });
    if (batchMs !== undefined) change["batchMs"] = batchMs;
    const dedup = strOpt(inv, "dedup-window");
    if (dedup !== undefined) change["dedupWindowMs"] = durationOpt(cmd, "dedup-window", dedup, 0);
    const typeName = strOpt(inv, "type");
    if (typeName !== undefined) resolveMessageType(typeName);
    return withNode(ctx, inv, "topic_config", async (node, graph) => {
      const host = strOpt(inv, "host");
      requireStore(graph, "configure", host);
      const r = await new StoreClient(node, {
        timeoutMs: 10000,
        ...(host !== undefined ? { host } : {}),
      }).configure({
        topic,
        type: typeName ?? "",
        config_json: JSON.stringify(change),
        rule: false,
      });
      if (boolOpt(inv, "json")) ctx.out(r.config_json);
      else ctx.out(`${topic}: ${describeSettings(r.config_json)}`);
      return 0;
    });
  },
};

/** A duration option: 500ms, 30s, 5m, 12h, 7d, or a plain number of ms. */
function durationOpt(cmd: string, opt: string, v: string, min: number): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
  const ms = m === null ? NaN : Math.round(Number(m[1]) * unit[(m[2] ?? "ms") as keyof typeof unit]);
  if (!Number.isSafeInteger(ms) || ms < min) {
    throw new UsageError(`${cmd}: --${opt} '${v}' is not a duration like 500ms, 30s, 5m, 12h or 7d`);
  }
  return ms;
}

/** 90000 → "1.5m", 604800000 → "7d". */
function formatDurationMs(ms: number): string {
  for (const [u, n] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (ms >= n) return `${+(ms / n).toFixed(2)}${u}`;
  }
  return `${ms}ms`;
}
