/**
 * zeromq.js v6 used directly and naively, the way its README shows: a PUB socket bound on `ipc://`, a
 * SUB socket connected to it, default options (high-water marks of 1000 messages), one
 * `await sock.send(payload)` per message and a `for await` receive loop. PUB drops messages once the
 * subscriber's queue is full, so this impl reports loss; that loss is the point of measuring it.
 */
import path from "node:path";
import * as zmq from "zeromq";
import type { EndpointOptions, Impl, Receiver, ReceiverOptions, Sender } from "../impl.js";
import { receiveLoop } from "./zeromq-common.js";

const impl: Impl = {
  name: "zeromq",
  description: "zeromq.js v6 PUB/SUB over ipc://, defaults, one await per send (drops when the HWM is hit)",

  async createSender(opts: EndpointOptions): Promise<Sender> {
    const sock = new zmq.Publisher();
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
    const sock = new zmq.Subscriber();
    sock.connect(opts.endpoint);
    sock.subscribe();
    return receiveLoop(sock);
  },
};

export default impl;
