/**
 * The test run behind `npm test` (after typecheck and lint): builds or reuses the control-plane binaries,
 * starts one control plane shared by the test files (each works in its own namespace), runs every test with
 * node's test runner, and stops the control plane whatever happens.
 *
 * Arguments are passed to `node --test` (e.g. a file list); without any, every test file runs.
 */
import { spawn } from "node:child_process";
import { startControlPlane } from "../sim/control-plane/index.ts";

const log = (line: string) => process.stderr.write(`${line}\n`);
const defaultGlobs = [
  "src/**/*.test.ts",
  "sim/**/*.test.ts",
  "scripts/**/*.test.ts",
  "test/**/*.test.ts",
  "bench/**/*.test.ts",
];
const args = process.argv.slice(2);
const files = args.some((a) => !a.startsWith("-")) ? [] : defaultGlobs;

log("starting the shared control plane (the first run builds the binaries from Go modules)");
const cp = await startControlPlane({ log });
log(`control plane ready at ${cp.server}`);
let code = 1;
try {
  code = await new Promise<number>((resolve) => {
    const child = spawn(
      process.execPath,
      ["--test", "--test-concurrency=3", "--test-timeout=600000", ...args, ...files],
      {
        stdio: "inherit",
        env: { ...process.env, AZP_TEST_KUBECONFIG: cp.kubeconfig, AZP_TEST_BIN_DIR: cp.binDir },
      },
    );
    child.on("exit", (c, signal) => resolve(c ?? (signal ? 1 : 0)));
  });
} finally {
  await cp.stop();
}
process.exit(code);
