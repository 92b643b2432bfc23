/**
 * The operator's HTTP endpoints: `/healthz` (liveness), `/readyz` (readiness), `/metrics` (Prometheus).
 */
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface HealthCheck {
  name: string;
  /** undefined when healthy, else the reason. */
  check(): string | undefined;
}

export interface ObservabilityServerOptions {
  host?: string;
  port: number;
  registry: Registry;
  liveness: HealthCheck[];
  readiness: HealthCheck[];
}

function report(checks: HealthCheck[]): { ok: boolean; body: string } {
  const failures = checks.flatMap((c) => {
    const reason = c.check();
    return reason === undefined ? [] : [`${c.name}: ${reason}`];
  });
  return failures.length === 0 ? { ok: true, body: "ok\n" } : { ok: false, body: `${failures.join("\n")}\n` };
}

export async function startObservabilityServer(
  options: ObservabilityServerOptions,
): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz" || path === "/readyz") {
      const r = report(path === "/healthz" ? options.liveness : options.readiness);
      res.writeHead(r.ok ? 200 : 503, { "Content-Type": "text/plain" }).end(r.body);
      return;
    }
    if (path === "/metrics") {
      options.registry
        .metrics()
        .then((text) => res.writeHead(200, { "Content-Type": options.registry.contentType }).end(text))
        .catch((err: unknown) => res.writeHead(500).end(String(err)));
      return;
    }
    res.writeHead(404).end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "0.0.0.0", () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : options.port;
  return {
    server,
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
