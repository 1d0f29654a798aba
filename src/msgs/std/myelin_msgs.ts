/**
 * `myelin_msgs`: the runtime's own services. Every node with parameters serves
 * `/<node>/list_parameters` and `/<node>/set_parameter`; values travel as JSON text so one type
 * serves every parameter kind. The hub serves `/_hub/info`.
 */
import { defineMessage, defineService, t } from "../schema.js";
import { registerType } from "../registry.js";

/**
 * How a parameter was declared (like rcl_interfaces/ParameterDescriptor): its kind, description,
 * inclusive bounds for numbers (absent when unbounded), whether it is read-only, and its default
 * (JSON).
 */
const ParameterDescriptor = defineMessage("myelin_msgs/ParameterDescriptor", {
  name: t.string(),
  kind: t.string(),
  description: t.string(),
  read_only: t.bool(),
  min: t.optional(t.f64()),
  max: t.optional(t.f64()),
  default_json: t.string(),
});
/**
 * Lists a node's parameters: names, kinds, current values (JSON), descriptions, and one descriptor
 * per parameter in the same order (absent from nodes that predate descriptors). The parallel arrays
 * stay, so older tools keep working.
 */
const ListParameters = defineService(
  "myelin_msgs/ListParameters",
  {},
  {
    names: t.array(t.string()),
    kinds: t.array(t.string()),
    values_json: t.array(t.string()),
    descriptions: t.array(t.string()),
    descriptors: t.optional(t.array(t.msg(ParameterDescriptor))),
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
 * messages of `type`, or `packed` holds them all in one buffer (each after its length as a u32
 * LE; `payloads` is then empty): one field to encode, check and decode instead of one per
 * message. The reply comes once they are written under the topic's fsync policy. Sequence numbers
 * are f64 (exact up to 2^53).
 */
const StoreAppend = defineService(
  "myelin_msgs/StoreAppend",
  {
    topic: t.string(),
    type: t.string(),
    payloads: t.array(t.bytes()),
    /** Publisher-supplied message ids, one per payload ("" for none); a known id is stored once. */
    msg_ids: t.array(t.string()),
    /** The payloads back to back, each after its length (u32 LE), instead of `payloads`. */
    packed: t.optional(t.bytes()),
  },
  {
    first_seq: t.f64(),
    count: t.u32(),
    /**
     * The seq of each payload (for a duplicate: the seq it was first stored under), when some
     * payload carried a message id; empty otherwise: the payloads got first_seq..first_seq+count-1.
     */
    seqs: t.array(t.f64()),
    /** Payloads not stored again because their id was seen within the deduplication window. */
    duplicates: t.u32(),
  },
);
/**
 * Pulls up to `max` messages for durable consumer `consumer` (shared by its clients), waiting up
 * to `wait_ms` for one. `start_at` is `first`, `last`, `seq:N` or `time:MS` (used when the
 * consumer is new). Times in ms. Each fetch grants the store credit for `max` messages; a client
 * (`client`) may keep several outstanding: the store answers them in the order they came, each as
 * soon as it has messages, and only the last one waits (the others are answered at once).
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
    /** Answer with `records` (the log's own record bytes) instead of the parallel arrays. */
    raw: t.optional(t.bool()),
    /**
     * Withdraws the client's grants instead (a consumer closing): the one waiting for messages is
     * answered at once, and this one, empty, after it; nothing is delivered.
     */
    cancel: t.optional(t.bool()),
  },
  {
    seqs: t.array(t.f64()),
    timestamps: t.array(t.f64()),
    deliveries: t.array(t.u32()),
    payloads: t.array(t.bytes()),
    /**
     * For a `raw` fetch: the messages delivered as records of the segment format
     * (docs/store-format.md), back to back; `deliveries` has one count per record, `seqs`,
     * `timestamps` and `payloads` are empty.
     */
    records: t.optional(t.bytes()),
  },
);
/**
 * Acknowledges (`acks`, and `ack_runs`: runs of consecutive seqs, flattened as `[start, count,
 * ...]`) or refuses for later redelivery (`nacks`, after `nack_delay_ms`) messages of a consumer.
 */
const StoreAck = defineService(
  "myelin_msgs/StoreAck",
  {
    topic: t.string(),
    consumer: t.string(),
    acks: t.array(t.f64()),
    ack_runs: t.optional(t.array(t.f64())),
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
    /** The topic's effective settings (mode, retention, fsync, batchMs, dedupWindowMs) as JSON. */
    config_json: t.string(),
  },
);
/**
 * Changes a durable topic's settings (`config_json`: mode, retention, fsync, batchMs,
 * dedupWindowMs; a retention limit set to null is removed). With `rule` (or a `*` in `topic`),
 * `topic` is a pattern and the settings apply to every topic it matches (kept as a rule, replacing
 * an earlier rule of the same pattern). Replies with the effective settings.
 */
const StoreConfigure = defineService(
  "myelin_msgs/StoreConfigure",
  { topic: t.string(), type: t.string(), config_json: t.string(), rule: t.bool() },
  { config_json: t.string() },
);

/**
 * An external payload carried as it is (gateway and bridge mappings with `format: raw`): `data`
 * holds the bytes exactly as the device or broker sent them.
 */
const RawPayload = defineMessage("myelin_msgs/RawPayload", { data: t.bytes() });
/**
 * A message the gateway or a bridge refused (published on its error topic, e.g.
 * `/_gateway/errors`): why, the external topic it came on, the index of the mapping rule (-1 when
 * none), who sent it (MQTT client id or bridge name) and when it was refused.
 */
const GatewayReject = defineMessage("myelin_msgs/GatewayReject", {
  reason: t.string(),
  external_topic: t.string(),
  rule: t.i32(),
  source: t.string(),
  stamp: t.time(),
});
/** One client of the MQTT gateway, as `/_gateway/status` reports it. Times in ms since the epoch. */
const GatewayClient = defineMessage("myelin_msgs/GatewayClient", {
  id: t.string(),
  user: t.string(),
  address: t.string(),
  transport: t.string(),
  clean: t.bool(),
  connected_at: t.f64(),
  subscriptions: t.array(t.string()),
  msgs_in: t.f64(),
  msgs_out: t.f64(),
  rejected: t.f64(),
});
/**
 * State of the MQTT gateway: listeners, clients, totals and rates (messages per second over the
 * last few seconds), rejects by reason, and the last reject.
 */
const GatewayStatus = defineService(
  "myelin_msgs/GatewayStatus",
  {},
  {
    listeners: t.array(t.string()),
    clients: t.array(t.msg(GatewayClient)),
    msgs_in: t.f64(),
    msgs_out: t.f64(),
    rate_in: t.f64(),
    rate_out: t.f64(),
    to_myelin: t.f64(),
    from_myelin: t.f64(),
    rejected: t.f64(),
    reject_reasons: t.array(t.string()),
    reject_counts: t.array(t.f64()),
    last_reject: t.string(),
    refused_connections: t.f64(),
    persistent_sessions: t.u32(),
    retained: t.u32(),
  },
);

/**
 * A device twin of the MQTT gateway (`/_twins/*`): desired and reported state and what differs
 * between them (`delta_json`: the desired keys the device has not reported yet), each a JSON
 * object as text; `version` counts every change of either, `desired_version` and
 * `reported_version` each one's own changes (what an update's expected version is checked
 * against). Times in ms since the epoch (0: never); `connected` says whether a client with the
 * device's identity is connected to the gateway now.
 */
const Twin = defineMessage("myelin_msgs/Twin", {
  device: t.string(),
  desired_json: t.string(),
  reported_json: t.string(),
  delta_json: t.string(),
  version: t.f64(),
  desired_version: t.f64(),
  reported_version: t.f64(),
  created_at: t.f64(),
  desired_updated_at: t.f64(),
  reported_updated_at: t.f64(),
  last_seen: t.f64(),
  connected: t.bool(),
  client_id: t.string(),
});
/**
 * One twin in a list: its versions, connection, what differs between desired and reported
 * (`delta_json`, a JSON object as text) and how many top-level keys that delta has.
 */
const TwinSummary = defineMessage("myelin_msgs/TwinSummary", {
  device: t.string(),
  version: t.f64(),
  desired_version: t.f64(),
  reported_version: t.f64(),
  last_seen: t.f64(),
  connected: t.bool(),
  delta_json: t.string(),
  delta_keys: t.u32(),
});
/**
 * Lists twins sorted by device name: those matching `pattern` (a glob: `*`, `?`; "" for all),
 * after device `after` ("" from the first), at most `max` (0: 1000). `more` when the list was cut;
 * `total` counts every match. `ok` false with `error_code` and `message` when refused.
 */
const TwinList = defineService(
  "myelin_msgs/TwinList",
  { pattern: t.string(), after: t.string(), max: t.u32() },
  {
    ok: t.bool(),
    error_code: t.string(),
    message: t.string(),
    twins: t.array(t.msg(TwinSummary)),
    more: t.bool(),
    total: t.u32(),
  },
);
/** One device's twin; `ok` false with `error_code` (e.g. ERR_UNKNOWN_DEVICE) and `message` when refused. */
const TwinGet = defineService(
  "myelin_msgs/TwinGet",
  { device: t.string() },
  { ok: t.bool(), error_code: t.string(), message: t.string(), twin: t.optional(t.msg(Twin)) },
);
/**
 * Changes a twin's desired state: `desired_json` is a JSON object merged into it (RFC 7386 merge
 * patch: `null` removes a key), or its whole new value with `replace`. With `expected_version`
 * the change applies only while desired is at that version (ERR_VERSION_CONFLICT otherwise);
 * `create` makes the twin of a device that has none (ERR_UNKNOWN_DEVICE otherwise). Replies with
 * the twin after the change, once it is on disk and the delta is on its way to the device.
 */
const TwinSet = defineService(
  "myelin_msgs/TwinSet",
  {
    device: t.string(),
    desired_json: t.string(),
    expected_version: t.optional(t.f64()),
    create: t.bool(),
    replace: t.bool(),
  },
  { ok: t.bool(), error_code: t.string(), message: t.string(), twin: t.optional(t.msg(Twin)) },
);
/** Deletes a twin (its file too); with `expected_version`, only while its version is that. */
const TwinDelete = defineService(
  "myelin_msgs/TwinDelete",
  { device: t.string(), expected_version: t.optional(t.f64()) },
  { ok: t.bool(), error_code: t.string(), message: t.string() },
);
/**
 * A change of a twin, on `/_twins/updates`: `kind` is created, desired, reported, connection or
 * deleted; `twin` is the twin after the change (before it, for deleted).
 */
const TwinUpdate = defineMessage("myelin_msgs/TwinUpdate", {
  kind: t.string(),
  twin: t.msg(Twin),
  stamp: t.time(),
});

/**
 * Supervisor (the hub's process manager): apply a resolved launch spec (`spec_json`, as
 * `loadSpec` returns it), waiting up to `wait_ms` for every process to be ready. `ok` false when a
 * process failed or the wait ran out (`message` says which). `processes_json` is the `myelin ps`
 * table as JSON (see docs/orchestration.md). `version` is the site-wide version of the spec (ms
 * since the epoch when `myelin up` made it; 0: this hub only, the version it holds stays): a hub
 * holding a newer one refuses an older one (`ok` false, `message` says so), and the hubs of a site
 * push the newest to the others.
 */
const SupervisorApply = defineService(
  "myelin_msgs/SupervisorApply",
  { spec_json: t.string(), wait_ms: t.u32(), version: t.f64() },
  { ok: t.bool(), message: t.string(), processes_json: t.string() },
);
/**
 * The supervised processes (`myelin ps`), the spec file and environment they came from; the
 * supervisor's host and placement labels, the site-wide version of its spec (0: none) and the
 * spec's process definitions as JSON (`[{ name, nodes, placement, replicas }]`, all of them, placed
 * here or not).
 */
const SupervisorPs = defineService(
  "myelin_msgs/SupervisorPs",
  {},
  {
    processes_json: t.string(),
    spec_file: t.string(),
    environment: t.string(),
    host: t.string(),
    labels: t.array(t.string()),
    version: t.f64(),
    units_json: t.string(),
  },
);
/**
 * Scales a node (or composed process) to `replicas`, or restarts it replica by replica
 * (`replicas` ignored), each time waiting up to `wait_ms` for readiness. `version`: for a scale of
 * the whole site, its site-wide version (as for SupervisorApply), so a host that missed it gets
 * the scaled spec pushed when it is back; 0: this hub only (and always for a restart).
 */
const SupervisorControl = defineService(
  "myelin_msgs/SupervisorControl",
  { node: t.string(), replicas: t.u32(), wait_ms: t.u32(), version: t.f64() },
  { ok: t.bool(), message: t.string(), processes_json: t.string() },
);
/**
 * Stops every supervised process in reverse dependency order; then the hub too if `stop_hub`.
 * `version`: the site-wide version of this stop (as for SupervisorApply; 0: this hub only).
 */
const SupervisorDown = defineService(
  "myelin_msgs/SupervisorDown",
  { stop_hub: t.bool(), wait_ms: t.u32(), version: t.f64() },
  // hub_stops: the hub exits after this reply (asked to, and started with --stop-on-down).
  { ok: t.bool(), message: t.string(), hub_stops: t.bool() },
);
/**
 * The last `lines` log lines of a node's processes (`replica` -1: every replica), oldest first,
 * each tagged `<process>#<replica>` in `sources`.
 */
const SupervisorLogs = defineService(
  "myelin_msgs/SupervisorLogs",
  { node: t.string(), replica: t.i32(), lines: t.u32() },
  { process: t.string(), sources: t.array(t.string()), lines: t.array(t.string()) },
);

/**
 * What the hub of a host says about itself (`/_hub/info`, served by `myelin hub`): its id, Myelin
 * version, pid and host, runtime directory and endpoints, when it started and its clock now (ms
 * since the epoch, for clock checks), the node timeout (ms), and its store: data directory ("" when
 * it runs without one), free space in bytes (-1 when unknown) and since when the disk has been full
 * (0 when it is not); how its tcp endpoints are secured (plain text with `--insecure`, else CURVE
 * under the host's public key) and how many handshakes they refused.
 */
const HubInfo = defineService(
  "myelin_msgs/HubInfo",
  {},
  {
    hub_id: t.string(),
    version: t.string(),
    pid: t.u32(),
    host: t.string(),
    runtime_dir: t.string(),
    endpoints: t.array(t.string()),
    started_at: t.f64(),
    time_ms: t.f64(),
    node_timeout_ms: t.u32(),
    data_dir: t.string(),
    store_free_bytes: t.f64(),
    store_disk_full_since: t.f64(),
    /** True when the hub's tcp endpoints are plain text (`--insecure`); absent from older hubs. */
    insecure: t.optional(t.bool()),
    /** The host's CURVE public key ("" when no tcp endpoint uses CURVE). */
    public_key: t.optional(t.string()),
    /** Handshakes and connections refused on CURVE endpoints since the hub started. */
    refused_handshakes: t.optional(t.f64()),
    /** Control messages refused for ownership (a bye or register for another connection's node). */
    refused_ownership: t.optional(t.f64()),
    /** Declarations the policy refused. */
    refused_declarations: t.optional(t.f64()),
    /** Malformed control messages dropped. */
    refused_malformed: t.optional(t.f64()),
    /** Refusal log lines suppressed by the rate limit (summarized instead). */
    refusal_lines_suppressed: t.optional(t.f64()),
  },
);

/**
 * Reads the hub's policy file again (`/_hub/reload_policy`, admins only; `myelin policy reload`).
 * `ok` false: the file was refused and the policy in force stays, `message` says why. Otherwise
 * `source` is the file, `admins` and `grants` count the new policy's entries, `changed` is false
 * when it equals the policy in force, and `nodes` is how many nodes were asked to register again.
 */
const HubReloadPolicy = defineService(
  "myelin_msgs/HubReloadPolicy",
  {},
  {
    ok: t.bool(),
    message: t.string(),
    source: t.string(),
    admins: t.u32(),
    grants: t.u32(),
    changed: t.bool(),
    nodes: t.u32(),
  },
);

/** The types of the `myelin_msgs` package (explicit, so `assert` can narrow). */
export interface MyelinMsgs {
  readonly ParameterDescriptor: typeof ParameterDescriptor;
  readonly ListParameters: typeof ListParameters;
  readonly SetParameter: typeof SetParameter;
  readonly StoreAppend: typeof StoreAppend;
  readonly StoreFetch: typeof StoreFetch;
  readonly StoreAck: typeof StoreAck;
  readonly StoreInfo: typeof StoreInfo;
  readonly StoreRead: typeof StoreRead;
  readonly StoreConfigure: typeof StoreConfigure;
  readonly RawPayload: typeof RawPayload;
  readonly GatewayReject: typeof GatewayReject;
  readonly GatewayClient: typeof GatewayClient;
  readonly GatewayStatus: typeof GatewayStatus;
  readonly Twin: typeof Twin;
  readonly TwinSummary: typeof TwinSummary;
  readonly TwinList: typeof TwinList;
  readonly TwinGet: typeof TwinGet;
  readonly TwinSet: typeof TwinSet;
  readonly TwinDelete: typeof TwinDelete;
  readonly TwinUpdate: typeof TwinUpdate;
  readonly SupervisorApply: typeof SupervisorApply;
  readonly SupervisorPs: typeof SupervisorPs;
  readonly SupervisorControl: typeof SupervisorControl;
  readonly SupervisorDown: typeof SupervisorDown;
  readonly SupervisorLogs: typeof SupervisorLogs;
  readonly HubInfo: typeof HubInfo;
  readonly HubReloadPolicy: typeof HubReloadPolicy;
}

/** The `myelin_msgs` package. */
export const myelin_msgs: MyelinMsgs = Object.freeze({
  ParameterDescriptor,
  ListParameters,
  SetParameter,
  StoreAppend,
  StoreFetch,
  StoreAck,
  StoreInfo,
  StoreRead,
  StoreConfigure,
  RawPayload,
  GatewayReject,
  GatewayClient,
  GatewayStatus,
  Twin,
  TwinSummary,
  TwinList,
  TwinGet,
  TwinSet,
  TwinDelete,
  TwinUpdate,
  SupervisorApply,
  SupervisorPs,
  SupervisorControl,
  SupervisorDown,
  SupervisorLogs,
  HubInfo,
  HubReloadPolicy,
});

for (const type of Object.values(myelin_msgs)) registerType(type);
