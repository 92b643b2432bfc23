/**
 * The operator as its own process for benchmarks: the tests' launcher, with the operator's default intervals
 * (unless `args` give others), JSON logs at info level, no leader election, and the launcher's default credential
 * policy flags (the emulator on 127.0.0.1 over http: `emulatorAccess()`).
 */
import { type OperatorProcess, startOperatorProcess as start } from "../../test/support/operator.ts";

export type { OperatorProcess };

export function startOperatorProcess(options: {
  kubeconfig: string;
  namespaces: string[];
  logFile: string;
  args?: string[];
}): OperatorProcess {
  return start({
    kubeconfig: options.kubeconfig,
    namespaces: options.namespaces,
    logFile: options.logFile,
    identity: "bench-operator",
    settings: ["--log-format", "json", "--log-level", "info"],
    args: ["--leader-elect", "false", ...(options.args ?? [])],
  });
}
