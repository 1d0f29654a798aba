/**
 * Myelin: a node per worker process, a reliable topic per channel, through a hub the runner starts
 * for the case (the hub only does discovery; data goes node to node over ipc://). `myelin`: the
 * sender awaits every `publish()` as a user would; `myelin-try`: it calls `tryPublish()` and awaits
 * only when the subscriber pushes back (`ready()`). The receiver validates every message against
 * its schema. Frames of 64 KiB and more go through shared memory (the receiver is on this host),
 * unless `MYELIN_SHM=off` (`myelin-copy`).
 *
 * Myelin is imported as a user's program does, from the package entry (`"myelin"`, one bundled
 * module; scripts/bundle.mjs). The hub starts where the runner starts it (`setup`): the workers
 * are nodes, and a node does not load the hub's code (it would count in `idle-rss`).
 * `ipc://` goes over the default carrier (the Unix-socket carrier, or what `MYELIN_IPC_TRANSPORT` names).
 */
import { createNode, defineMessage, geometry_msgs, t, type Node } from "myelin";
import type { EndpointOptions, Impl, Receiver, ReceiverOptions, Sender, Twist } from "../impl.js";

/** The 64 B / 4 KiB / 1 MiB payload cases: one `bytes` field. */
const Bytes = defineMessage("myelin_bench/Bytes", { data: t.bytes() });

async function node(opts: EndpointOptions, role: string): Promise<Node> {
  return createNode({ name: `bench_${opts.channel.replace(/-/g, "_")}_${role}`, runtimeDir: opts.dir });
}

/** The Myelin impl; with `tryPublish`, the sender awaits only on backpressure. */
export function myelinImpl(tryPublish: boolean): Impl {
  return {
    name: tryPublish ? "myelin-try" : "myelin",
    description: tryPublish
      ? "Myelin nodes, reliable topic over ipc://, tryPublish (await only on backpressure), schema validation on receive"
      : "Myelin nodes, reliable topic over ipc://, await per publish, schema validation on receive",

    async setup(ctx) {
      const { Hub } = await import("myelin");
      const hub = await Hub.start({ runtimeDir: ctx.dir });
      return {
        env: { MYELIN_RUNTIME_DIR: ctx.dir },
        teardown: async () => hub.close(),
      };
    },

    async createSender(opts: EndpointOptions): Promise<Sender> {
      const n = await node(opts, "tx");
      const topic = `/bench/${opts.channel}`;
      const bytes = await n.createPublisher(topic, Bytes);
      const twist = await n.createPublisher(`${topic}/twist`, geometry_msgs.Twist);
      return {
        endpoint: topic,
        send: tryPublish
          ? (payload) => {
              const m = { data: payload };
              return bytes.tryPublish(m) ? undefined : bytes.ready().then(() => bytes.publish(m));
            }
          : (payload) => bytes.publish({ data: payload }),
        sendTwist: tryPublish
          ? (msg: Twist) => (twist.tryPublish(msg) ? undefined : twist.ready().then(() => twist.publish(msg)))
          : (msg: Twist) => twist.publish(msg),
        flush: async () => undefined,
        close: () => n.close(),
      };
    },

    async createReceiver(opts: ReceiverOptions): Promise<Receiver> {
      const n = await node(opts, "rx");
      return {
        onMessage(cb) {
          void n.createSubscription(opts.endpoint, Bytes, (m) => cb(m.data));
        },
        onTwist(cb) {
          void n.createSubscription(`${opts.endpoint}/twist`, geometry_msgs.Twist, (m) => cb(m));
        },
        close: () => n.close(),
      };
    },
  };
}

const impl = myelinImpl(false);

/**
 * The same with shared memory off (`MYELIN_SHM=off`): large frames are copied over the socket, as on
 * a host without the addon. Compare with `myelin` in the large-frame cases.
 */
export function myelinWithoutShm(): Impl {
  return {
    ...impl,
    name: "myelin-copy",
    description: "Myelin as above with MYELIN_SHM=off: large frames copied over the socket",
    async setup(ctx) {
      const r = await impl.setup!(ctx);
      return { ...r, env: { ...r.env, MYELIN_SHM: "off" } };
    },
  };
}

/**
 * The same with the carrier of `ipc://` pinned, whatever the default: `unix` (the plain Unix-socket
 * carrier) or `zeromq`. The hub gets the same carrier, the workers `MYELIN_IPC_TRANSPORT`.
 */
export function myelinOver(carrier: "unix" | "zeromq"): Impl {
  return {
    ...impl,
    name: `myelin-${carrier === "unix" ? "unix" : "zmq"}`,
    description: `Myelin as above, ipc:// carried by ${carrier === "unix" ? "the Unix-socket carrier" : "ZeroMQ"}`,
    async setup(ctx) {
      const { Hub } = await import("../../src/hub/index.js");
      const { unixTransport } = await import("../../src/transport/unix/unix-transport.js");
      const { zmqTransport } = await import("../../src/transport/zmq/zmq-transport.js");
      const hub = await Hub.start({
        runtimeDir: ctx.dir,
        transports: { ipc: carrier === "unix" ? unixTransport : zmqTransport, tcp: zmqTransport },
      });
      return {
        env: { MYELIN_RUNTIME_DIR: ctx.dir, MYELIN_IPC_TRANSPORT: carrier },
        teardown: async () => hub.close(),
      };
    },
  };
}

export default impl;
