/**
 * What an MQTT.js client receives, kept in order, with a wait for the next message on a topic
 * (bounded by a timeout, never a sleep).
 */
import type { MqttClient } from "mqtt";

/** One received message, its payload parsed as JSON when it is JSON. */
export interface Received {
  topic: string;
  text: string;
  json: Record<string, unknown>;
}

/** The messages a client receives. */
export class MqttInbox {
  readonly messages: Received[] = [];
  readonly #taken = new Set<number>();
  #waiters = new Set<() => void>();

  constructor(client: MqttClient) {
    client.on("message", (topic, payload) => {
      const text = payload.toString();
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // not JSON: kept as text
      }
      this.messages.push({ topic, text, json });
      for (const w of [...this.#waiters]) w();
    });
  }

  /**
   * The first message on `topic` not returned before (one already received, or the next to
   * come). Rejects after `timeoutMs` naming what did arrive.
   */
  next(topic: string, timeoutMs = 10000): Promise<Received> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const i = this.messages.findIndex((m, j) => m.topic === topic && !this.#taken.has(j));
        if (i < 0) return false;
        this.#taken.add(i);
        done();
        resolve(this.messages[i]!);
        return true;
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `no message on ${topic} within ${timeoutMs} ms; received: ${JSON.stringify(this.messages.map((m) => `${m.topic} ${m.text}`))}`,
          ),
        );
      }, timeoutMs);
      const w = (): void => void check();
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(w);
      };
      if (!check()) this.#waiters.add(w);
    });
  }

  /** Every message received so far on `topic`. */
  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }
}
