/**
 * `myelin_msgs`: the runtime's own services. Every node with parameters serves
 * `/<node>/list_parameters` and `/<node>/set_parameter`; values travel as JSON text so one type
 * serves every parameter kind.
 */
import { defineService, t } from "../schema.js";
import { registerType } from "../registry.js";

/** Lists a node's parameters: names, kinds, current values (JSON), descriptions. */
const ListParameters = defineService(
  "myelin_msgs/ListParameters",
  {},
  {
    names: t.array(t.string()),
    kinds: t.array(t.string()),
    values_json: t.array(t.string()),
    descriptions: t.array(t.string()),
  },
);
/** Sets one parameter from its JSON value; `success` false with the `reason` when refused. */
const SetParameter = defineService(
  "myelin_msgs/SetParameter",
  { name: t.string(), value_json: t.string() },
  { success: t.bool(), reason: t.string(), value_json: t.string() },
);

/**
 * Appends messages to a durable topic (the store service of the hub). `payloads` are encoded
 * messages of `type`; the reply comes once they are written under the topic's fsync policy.
 * Sequence numbers are f64 (exact up to 2^53).
 */
const StoreAppend = defineService(
  "myelin_msgs/StoreAppend",
  { topic: t.string(), type: t.string(), payloads: t.array(t.bytes()) },
  { first_seq: t.f64(), count: t.u32() },
);
/**
 * Pulls up to `max` messages for durable consumer `consumer` (shared by its clients), waiting up
 * to `wait_ms` for one. `start_at` is `first`, `last`, `seq:N` or `time:MS` (used when the
 * consumer is new). Times in ms.
 */
const StoreFetch = defineService(
  "myelin_msgs/StoreFetch",
  {
    topic: t.string(),
    type: t.string(),
    consumer: t.string(),
    client: t.string(),
    max: t.u32(),
    wait_ms: t.u32(),
    start_at: t.string(),
    ack_timeout_ms: t.u32(),
    max_deliver: t.u32(),
    max_in_flight: t.u32(),
  },
  {
    seqs: t.array(t.f64()),
    timestamps: t.array(t.f64()),
    deliveries: t.array(t.u32()),
    payloads: t.array(t.bytes()),
  },
);
/** Acknowledges (`acks`) or refuses for later redelivery (`nacks`, after `nack_delay_ms`) messages of a consumer. */
const StoreAck = defineService(
  "myelin_msgs/StoreAck",
  {
    topic: t.string(),
    consumer: t.string(),
    acks: t.array(t.f64()),
    nacks: t.array(t.f64()),
    nack_delay_ms: t.u32(),
  },
  { acked: t.u32() },
);
/**
 * Reads a range of a durable topic without a consumer (replay, inspection): up to `max` messages
 * from `from_seq`, or from the first message stored at or after `from_time_ms` when that is > 0.
 */
const StoreRead = defineService(
  "myelin_msgs/StoreRead",
  { topic: t.string(), from_seq: t.f64(), from_time_ms: t.f64(), max: t.u32() },
  { type: t.string(), seqs: t.array(t.f64()), timestamps: t.array(t.f64()), payloads: t.array(t.bytes()) },
);
/** Describes a durable topic: sequence range, size, and each consumer's lag and pending count. */
const StoreInfo = defineService(
  "myelin_msgs/StoreInfo",
  { topic: t.string() },
  {
    exists: t.bool(),
    type: t.string(),
    first_seq: t.f64(),
    last_seq: t.f64(),
    count: t.f64(),
    bytes: t.f64(),
    consumers: t.array(t.string()),
    lags: t.array(t.f64()),
    pending: t.array(t.u32()),
    dead_lettered: t.array(t.u32()),
  },
);

/** The types of the `myelin_msgs` package (explicit, so `assert` can narrow). */
export interface MyelinMsgs {
  readonly ListParameters: typeof ListParameters;
  readonly SetParameter: typeof SetParameter;
  readonly StoreAppend: typeof StoreAppend;
  readonly StoreFetch: typeof StoreFetch;
  readonly StoreAck: typeof StoreAck;
  readonly StoreInfo: typeof StoreInfo;
  readonly StoreRead: typeof StoreRead;
}

/** The `myelin_msgs` package. */
export const myelin_msgs: MyelinMsgs = Object.freeze({
  ListParameters,
  SetParameter,
  StoreAppend,
  StoreFetch,
  StoreAck,
  StoreInfo,
  StoreRead,
});

for (const type of Object.values(myelin_msgs)) registerType(type);
