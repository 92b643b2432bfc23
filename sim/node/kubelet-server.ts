/**
 * The part of the kubelet API that `kubectl logs` reaches through the API server:
 * `GET /containerLogs/{namespace}/{pod}/{container}` with `tailLines`, `timestamps` and `follow`. Served over HTTPS
 * on 127.0.0.1 with a throw-away certificate (the API server does not verify kubelet certificates unless told to).
 */
import { createServer, type Server } from "node:https";
import { selfSignedTls } from "../azure-devops/tls.ts";

export interface LogSource {
  /** Lines of a container, each `<RFC3339 time> <text>`; undefined when the pod or container is unknown. */
  lines(namespace: string, pod: string, container: string): string[] | undefined;
  /** True while the container may still write. */
  running(namespace: string, pod: string, container: string): boolean;
}

export async function startKubeletServer(source: LogSource): Promise<{ port: number; close(): Promise<void> }> {
  const tls = await selfSignedTls({ hosts: ["127.0.0.1"] });
  const server: Server = createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    const url = new URL(req.url ?? "/", "https://127.0.0.1");
    const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (req.method !== "GET" || !m) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
      return;
    }
    const [ns, pod, container] = [m[1], m[2], m[3]].map((s) => decodeURIComponent(s ?? "")) as [string, string, string];
    const all = source.lines(ns, pod, container);
    if (!all) {
      res
        .writeHead(404, { "Content-Type": "text/plain" })
        .end(`container ${container} of pod ${ns}/${pod} not found\n`);
      return;
    }
    const timestamps = url.searchParams.get("timestamps") === "true";
    const tail = Number(url.searchParams.get("tailLines") ?? "-1");
    const format = (line: string) => `${timestamps ? line : line.replace(/^\S+ /, "")}\n`;
    res.writeHead(200, { "Content-Type": "text/plain" });
    const first = tail >= 0 ? all.slice(Math.max(0, all.length - tail)) : all;
    for (const line of first) res.write(format(line));
    if (url.searchParams.get("follow") !== "true") {
      res.end();
      return;
    }
    let sent = all.length;
    const timer = setInterval(() => {
      const now = source.lines(ns, pod, container) ?? [];
      for (const line of now.slice(sent)) res.write(format(line));
      sent = now.length;
      if (!source.running(ns, pod, container)) {
        clearInterval(timer);
        res.end();
      }
    }, 200);
    res.on("close", () => clearInterval(timer));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
