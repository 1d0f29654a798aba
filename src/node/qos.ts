/**
 * Quality of service, in the ROS 2 vocabulary robot engineers already think in.
 */
import { MyelinError } from "../errors.js";

/** QoS of a publisher or subscription. */
export interface Qos {
  /** `reliable` loses nothing between live nodes and pushes back; `best-effort` drops under overload and counts. */
  reliability: "reliable" | "best-effort";
  /**
   * `transient-local`: a late subscriber first gets the publisher's last `depth` messages.
   * `persistent` (publishers): every message is also appended to the topic's durable log in the
   * hub's store, and `publish()` resolves once it is on disk; read it back with a durable consumer.
   */
  durability: "volatile" | "transient-local" | "persistent";
  /** History depth: messages kept for late joiners, and the default subscription queue size. */
  depth: number;
  /** Expected maximum period between messages, in ms; a miss is a `deadline` event. 0 = none. */
  deadlineMs: number;
  /** A publisher not heard from for this long is reported gone (`liveliness` event), in ms. */
  livelinessLeaseMs: number;
}

/** Default QoS: reliable, volatile, depth 10 (like ROS 2's default profile). */
export const QOS_DEFAULT: Readonly<Qos> = Object.freeze({
  reliability: "reliable",
  durability: "volatile",
  depth: 10,
  deadlineMs: 0,
  livelinessLeaseMs: 3000,
});

/** Sensor-data QoS: best-effort, shallow (like ROS 2's sensor data profile). */
export const QOS_SENSOR_DATA: Readonly<Partial<Qos>> = Object.freeze({
  reliability: "best-effort",
  depth: 5,
});

/** Latched-topic QoS: reliable, transient-local, depth 1 (late joiners get the last value). */
export const QOS_LATCHED: Readonly<Partial<Qos>> = Object.freeze({ durability: "transient-local", depth: 1 });

/** Fills defaults and checks a QoS; throws ERR_INVALID_ARGUMENT naming the bad field. */
export function resolveQos(q: Partial<Qos> | undefined, where: string): Qos {
  const r: Qos = { ...QOS_DEFAULT, ...(q ?? {}) };
  if (r.reliability !== "reliable" && r.reliability !== "best-effort") {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: qos.reliability must be 'reliable' or 'best-effort', got '${String(r.reliability)}'`,
    );
  }
  if (r.durability !== "volatile" && r.durability !== "transient-local" && r.durability !== "persistent") {
    throw new MyelinError(
      "ERR_INVALID_ARGUMENT",
      `${where}: qos.durability must be 'volatile', 'transient-local' or 'persistent', got '${String(r.durability)}'`,
    );
  }
  for (const k of ["depth", "deadlineMs", "livelinessLeaseMs"] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 0) {
      throw new MyelinError(
        "ERR_INVALID_ARGUMENT",
        `${where}: qos.${k} must be a non-negative integer, got ${String(r[k])}`,
      );
    }
  }
  if (r.depth < 1) throw new MyelinError("ERR_INVALID_ARGUMENT", `${where}: qos.depth must be at least 1`);
  return r;
}
