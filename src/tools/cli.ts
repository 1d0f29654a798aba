/**
 * The `myelin` command line: every command and its help. Each command group lives in its own file
 * (cmd-*.ts) and is described by a CommandSpec, from which the help is generated; dispatch, parsing
 * and error reporting are in cli-core.ts.
 *
 * Exit codes: 0 success, 1 the operation failed (the message says why and names the error code),
 * 2 usage mistake (unknown command or option, missing argument), 130 interrupted while waiting.
 */
import { hubCommand } from "./cmd-hub.js";
import { siteStatusCommand } from "./cmd-site.js";
import { policyReloadCommand } from "./cmd-policy.js";
import { dashboardCommand } from "./cmd-dashboard.js";
import { gatewayHashPasswordCommand, gatewayStatusCommand } from "./cmd-gateway.js";
import { bridgeStatusCommand } from "./cmd-bridge.js";
import { renderComposeCommand, renderK8sCommand } from "./cmd-render.js";
import { uplinkStatusCommand } from "./cmd-uplink.js";
import { foxgloveStatusCommand } from "./cmd-foxglove.js";
import {
  twinDeleteCommand,
  twinGetCommand,
  twinListCommand,
  twinSetCommand,
  twinWatchCommand,
} from "./cmd-twin.js";
import {
  downCommand,
  logsCommand,
  psCommand,
  restartCommand,
  scaleCommand,
  upCommand,
} from "./cmd-orchestrator.js";
import { interfaceListCommand, interfaceShowCommand } from "./cmd-interface.js";
import { nodeInfoCommand, nodeListCommand } from "./cmd-node.js";
import {
  paramDescribeCommand,
  paramDumpCommand,
  paramGetCommand,
  paramListCommand,
  paramLoadCommand,
  paramSetCommand,
} from "./cmd-param.js";
import {
  serviceCallCommand,
  serviceFindCommand,
  serviceListCommand,
  serviceTypeCommand,
} from "./cmd-service.js";
import { completionCommand } from "./cmd-completion.js";
import { bagInfoCommand, bagRepairCommand } from "./cmd-bag.js";
import { playCommand, recordCommand } from "./cmd-record.js";
import { doctorCommand } from "./cmd-doctor.js";
import {
  keysInitCommand,
  keysListCommand,
  keysRevokeCommand,
  keysShowCommand,
  keysTrustCommand,
} from "./cmd-keys.js";
import { topicBwCommand, topicDelayCommand } from "./cmd-topic-stats.js";
import {
  topicEchoCommand,
  topicFindCommand,
  topicHzCommand,
  topicInfoCommand,
  topicListCommand,
  topicPubCommand,
  topicReadCommand,
  topicConfigCommand,
} from "./cmd-topic.js";
import type { CommandSpec } from "./common.js";
import {
  groupHelpOf,
  mainHelpOf,
  runCli,
  type CliOutput,
  type CommandGroup,
  type CommandTable,
} from "./cli-core.js";

export { version } from "./common.js";
export { commandHelp, type CliOutput } from "./cli-core.js";

/** Every command, in the order the help lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  hubCommand,
  siteStatusCommand,
  dashboardCommand,
  upCommand,
  downCommand,
  psCommand,
  logsCommand,
  scaleCommand,
  restartCommand,
  nodeListCommand,
  nodeInfoCommand,
  topicListCommand,
  topicInfoCommand,
  topicFindCommand,
  topicEchoCommand,
  topicPubCommand,
  topicHzCommand,
  topicBwCommand,
  topicDelayCommand,
  topicReadCommand,
  topicConfigCommand,
  serviceListCommand,
  serviceTypeCommand,
  serviceFindCommand,
  serviceCallCommand,
  paramListCommand,
  paramGetCommand,
  paramSetCommand,
  paramDescribeCommand,
  paramDumpCommand,
  paramLoadCommand,
  interfaceListCommand,
  interfaceShowCommand,
  gatewayStatusCommand,
  gatewayHashPasswordCommand,
  twinListCommand,
  twinGetCommand,
  twinSetCommand,
  twinDeleteCommand,
  twinWatchCommand,
  bridgeStatusCommand,
  renderK8sCommand,
  renderComposeCommand,
  uplinkStatusCommand,
  recordCommand,
  playCommand,
  bagInfoCommand,
  bagRepairCommand,
  foxgloveStatusCommand,
  doctorCommand,
  keysInitCommand,
  keysShowCommand,
  keysTrustCommand,
  keysListCommand,
  keysRevokeCommand,
  policyReloadCommand,
  completionCommand(() => COMMANDS),
];

const GROUPS: Record<string, CommandGroup> = {
  node: { summary: "the running nodes", examples: ["myelin node list", "myelin node info talker"] },
  topic: {
    summary: "list, inspect, echo, publish and measure topics",
    examples: [
      "myelin topic list -t",
      "myelin topic echo /chatter",
      "myelin topic pub /chatter std_msgs/String '{data: hi}'",
      "myelin topic bw /camera/front/image",
    ],
  },
  service: {
    summary: "list, find and call services",
    examples: [
      "myelin service list -t",
      "myelin service find std_srvs/Trigger",
      "myelin service call /add_two_ints example_interfaces/AddTwoInts '{a: 1, b: 2}'",
    ],
  },
  param: {
    summary: "list, describe, read, set, dump and load the parameters of running nodes",
    examples: [
      "myelin param list camera",
      "myelin param set camera fps 30",
      "myelin param dump camera > camera.yaml && myelin param load camera camera.yaml",
    ],
  },
  bag: {
    summary: "inspect MCAP recordings and repair unclosed ones",
    examples: ["myelin bag info run.mcap", "myelin bag repair run.mcap"],
  },
  uplink: {
    summary: "the hub's uplink to the cloud over NATS and JetStream (store-and-forward)",
    examples: ["myelin uplink status", "myelin uplink status --json"],
  },
  bridge: {
    summary: "the hub's bridges to external MQTT, NATS and AMQP brokers",
    examples: ["myelin bridge status", "myelin bridge status plant-mqtt --json"],
  },
  render: {
    summary: "render a launch spec to Kubernetes manifests or a Docker Compose file",
    examples: [
      "myelin render k8s myelin.yaml | kubectl apply -f -",
      "myelin render compose myelin.yaml -o deploy/",
    ],
  },
  foxglove: {
    summary: "the Foxglove WebSocket server of the hub",
    examples: ["myelin foxglove status", "myelin foxglove status --json"],
  },
  keys: {
    summary: "this host's CURVE keys and the keys it trusts (every tcp link between hosts)",
    examples: ["myelin keys init", "myelin keys show", "myelin keys trust edge-1 KEY", "myelin keys list"],
  },
  gateway: {
    summary: "the MQTT gateway of the hub: status, password hashes",
    examples: ["myelin gateway status", "myelin gateway hash-password"],
  },
  policy: {
    summary: "the hub's permission policy",
    examples: ["myelin policy reload"],
  },
  site: {
    summary: "the site: this host's hub and its peer hubs on other hosts",
    examples: ["myelin site status", "myelin site status --json"],
  },
  twin: {
    summary: "the device twins of the MQTT gateway: desired and reported state of each device",
    examples: [
      "myelin twin list",
      "myelin twin get pump-7",
      `myelin twin set pump-7 '{"speed": 1200}' --expect-version 4`,
    ],
  },
  interface: {
    summary: "the message and service types known here",
    examples: ["myelin interface list", "myelin interface show geometry_msgs/Twist"],
  },
};

const TABLE: CommandTable = { commands: COMMANDS, groups: GROUPS };

/** The help of a command group, e.g. `myelin topic`. */
export function groupHelp(group: string): string[] {
  return groupHelpOf(TABLE, group);
}

/** The top-level help. */
export function mainHelp(): string[] {
  return mainHelpOf(TABLE);
}

/**
 * Runs the CLI with `argv` (the arguments after `myelin`) and returns the exit code. Ctrl-C or
 * SIGTERM ends a running command cleanly (another one, a second or more later, exits at once). `output` replaces stdout and
 * stderr (used by tests); it never throws.
 */
export function main(argv: string[], output?: CliOutput): Promise<number> {
  return runCli(TABLE, argv, output);
}
