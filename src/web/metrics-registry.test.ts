import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { HubMetrics, type MetricsSources } from "./metrics-registry.js";
import { isLoopbackHost, parseMetricsAddress } from "./metrics-address.js";
import { metricsFormatFor } from "./metrics-server.js";

const DOC = fileURLToPath(new URL("../../../docs/metrics.md", import.meta.url));

function sources(over: Partial<MetricsSources> = {}): MetricsSources {
  const none = (): undefined => undefined;
  return {
    info: { version: "1.2.3", host: "h1" },
    hub: none,
    site: none,
    store: none,
    uplink: none,
    gateway: none,
    bridges: none,
    foxglove: none,
    shm: none,
    ...over,
  };
}

test("docs/metrics.md lists every metric family, with its type", () => {
  const doc = readFileSync(DOC, "utf8");
  const m = new HubMetrics(sources(), { processMetrics: false });
  const missing = m
    .describe()
    .filter((d) => !new RegExp(`\\| \`${d.name}\` +\\| ${d.type} +\\|`).test(doc))
    .map((d) => `${d.name} (${d.type})`);
  assert.deepEqual(missing, [], `add these to the tables of docs/metrics.md:\n${missing.join("\n")}`);
  assert.ok(m.describe().length > 60);
  for (const d of m.describe()) {
    if (d.type === "counter") assert.match(d.name, /_total$/, `counter ${d.name} ends in _total`);
    else assert.doesNotMatch(d.name, /_total$/, `${d.type} ${d.name} does not end in _total`);
  }
});

test("a scrape renders the snapshot of the sources, and a vanished topic leaves no series", async () => {
  let topics = [
    {
      topic: "/a",
      mode: "limits" as const,
      messages: 3,
      bytes: 100,
      firstSeq: 1,
      lastSeq: 3,
      appended: 3,
      consumers: [{ name: "c", lagMessages: 2, pending: 1, deadLettered: 0 }],
    },
  ];
  let calls = 0;
  const m = new HubMetrics(
    sources({
      store: () => {
        calls++;
        return { topics, freeBytes: 1e9, diskFull: false };
      },
    }),
    { processMetrics: false },
  );
  const { body, contentType } = await m.scrape();
  assert.equal(calls, 1, "one reading per scrape, whatever the number of families");
  assert.equal(contentType, "text/plain; version=0.0.4; charset=utf-8");
  assert.match(body, /^myelin_store_topic_messages\{topic="\/a"\} 3$/m);
  assert.match(body, /^myelin_store_consumer_lag_messages\{topic="\/a",consumer="c"\} 2$/m);
  assert.match(body, /^myelin_hub_info\{version="1\.2\.3",host="h1"\} 1$/m);
  topics = [];
  const again = await m.scrape("openmetrics");
  assert.doesNotMatch(again.body, /topic="\/a"/);
  assert.match(again.body, /# EOF\n$/);
  assert.equal(again.contentType, "application/openmetrics-text; version=1.0.0; charset=utf-8");
});

test("the metrics address: PORT, ADDR:PORT, [IPV6]:PORT; anything else names the mistake", () => {
  assert.deepEqual(parseMetricsAddress("9464"), { host: "127.0.0.1", port: 9464 });
  assert.deepEqual(parseMetricsAddress("0.0.0.0:9464"), { host: "0.0.0.0", port: 9464 });
  assert.deepEqual(parseMetricsAddress("[::1]:0"), { host: "::1", port: 0 });
  assert.deepEqual(parseMetricsAddress("metrics.local:80"), { host: "metrics.local", port: 80 });
  const bad: [string, RegExp][] = [
    ["", /the port is missing/],
    ["x", /'x' is not a port number/],
    [":9464", /the address before ':' is missing/],
    ["::1:9464", /write an IPv6 address in brackets/],
    ["[::1]9464", /written \[ADDR\]:PORT/],
    ["[1.2.3.4]:1", /'1\.2\.3\.4' is not an IPv6 address/],
    ["a b:1", /'a b' is not an IP address or host name/],
    ["1:99999", /port 99999 is above 65535/],
  ];
  for (const [text, re] of bad) {
    assert.throws(
      () => parseMetricsAddress(text, "MYELIN_METRICS"),
      (e: Error & { code?: string }) =>
        e.code === "ERR_INVALID_ARGUMENT" && re.test(e.message) && e.message.startsWith("MYELIN_METRICS"),
      text,
    );
  }
  assert.ok(isLoopbackHost("127.0.0.1") && isLoopbackHost("::1") && !isLoopbackHost("0.0.0.0"));
  assert.equal(
    metricsFormatFor("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    "openmetrics",
  );
  assert.equal(metricsFormatFor("text/plain"), "prometheus");
  assert.equal(metricsFormatFor(undefined), "prometheus");
});
