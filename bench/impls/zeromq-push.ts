/**
 * zeromq.js v6 PUSH/PULL over `ipc://`, defaults, one `await sock.send(payload)` per message: the
 * lossless variant (PUSH blocks instead of dropping when the high-water mark is reached).
 */
import path from "node:path";
import * as zmq from "zeromq";
import type { EndpointOptions, Impl, Receiver, ReceiverOptions, Sender } from "../impl.js";
import { receiveLoop } from "./zeromq-common.js";

const impl: Impl = {
  name: "zeromq-push",
  description: "zeromq.js v6 PUSH/PULL over ipc://, defaults, one await per send (blocks, no loss)",

  async createSender(opts: EndpointOptions): Promise<Sender> {
    const sock = new zmq.Push();
    const endpoint = `ipc://${path.join(opts.dir, `${opts.channel}.ipc`)}`;
    await sock.bind(endpoint);
    return {
      endpoint,
      send: (payload) => sock.send(payload),
      flush: async () => undefined,
      close: async () => {
        sock.linger = 0;
        sock.close();
      },
    };
  },

  async createReceiver(opts: ReceiverOptions): Promise<Receiver> {
    const sock = new zmq.Pull();
    sock.connect(opts.endpoint);
    return receiveLoop(sock);
  },
};

export default impl;
