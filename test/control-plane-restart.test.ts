/**
 * The control plane's restart capability (used by the chaos run): kube-apiserver stopped and started again on the
 * same port with the same certificates keeps etcd's data and the clients' credentials; components that exited are
 * started again; stop() leaves no process behind, however many were started. Runs a control plane of its own (the
 * shared one must not restart under other tests).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { type ControlPlane, startControlPlane } from "../sim/control-plane/index.ts";

/** PIDs of processes whose command line mentions `text`. */
function processesMentioning(text: string): number[] {
  return readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, "utf8").includes(text);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe("control plane: restarts", () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.stop();
  });

  test("kube-apiserver restarted (SIGTERM, then SIGKILL with a pause) keeps the data; restartExited brings back what exited", async () => {
    await cp.client.request({
      method: "POST",
      path: "/api/v1/namespaces/default/configmaps",
      body: { metadata: { name: "survives" }, data: { a: "1" } },
    });
    await cp.restartApiServer();
    await cp.restartApiServer({ kill: true, downMs: 1000 });
    const got = await cp.client.request<{ data?: Record<string, string> }>({
      path: "/api/v1/namespaces/default/configmaps/survives",
    });
    assert.deepEqual(got.data, { a: "1" });
    // Whatever exited meanwhile (controller manager and scheduler may lose their leases) comes back, once.
    const first = await cp.restartExited();
    for (const name of first) assert.ok(["kube-controller-manager", "kube-scheduler"].includes(name), name);
    assert.equal(processesMentioning(`--secure-port=${cp.ports.apiserver}`).length, 1, "one kube-apiserver");
  });

  test("stop() ends every process it ever started", async () => {
    const dir = cp.dir;
    await cp.stop();
    assert.deepEqual(processesMentioning(dir), []);
  });
});
