/**
 * The hub's metrics option (`myelin hub --metrics ADDR:PORT`, or `MYELIN_METRICS`): a Prometheus
 * endpoint (docs/metrics.md).
 */
import type { HubPlugin } from "../hub/index.js";
import { strOpt, UsageError, version, type Invocation, type OptionSpec } from "./common.js";

/** Options `myelin hub` takes for the metrics endpoint. */
export const HUB_METRICS_OPTIONS: Record<string, OptionSpec> = {
  metrics: {
    type: "string",
    arg: "ADDR:PORT",
    help: "serve Prometheus metrics on http://ADDR:PORT/metrics (a port alone: loopback; default: $MYELIN_METRICS, else off); see docs/metrics.md",
  },
};

/**
 * The metrics plugin `--metrics` (else `$MYELIN_METRICS`) asks for, or undefined when neither is set.
 * Its modules (prom-client among them) are loaded only then: a hub without metrics never holds them.
 * @throws UsageError for an address that is not PORT, ADDR:PORT or [IPV6]:PORT
 */
export async function hubMetricsPlugin(inv: Invocation): Promise<HubPlugin | undefined> {
  const opt = strOpt(inv, "metrics");
  const env = process.env["MYELIN_METRICS"];
  const [text, where] =
    opt !== undefined ? [opt, "--metrics"] : env !== undefined && env !== "" ? [env, "MYELIN_METRICS"] : [];
  if (text === undefined || where === undefined) return undefined;
  const { metricsPlugin, parseMetricsAddress } = await import("../web/index.js");
  try {
    return metricsPlugin({ address: parseMetricsAddress(text, `hub: ${where}`), version: version(), where });
  } catch (err) {
    throw new UsageError((err as Error).message, "hub");
  }
}
