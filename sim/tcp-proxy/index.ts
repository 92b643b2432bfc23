/**
 * A loopback TCP proxy that can make connections stall silently: bytes stop flowing in both directions, but
 * neither side sees the connection close, as when a middlebox forgets an established flow. Put it between a
 * client and a server (e.g. an operator and kube-apiserver: the operator's kubeconfig points at the proxy; TLS
 * passes through untouched) and freeze:
 *
 * - `freeze("all")`: every connection open now (watches and idle keep-alive sockets alike); new ones pass.
 * - `freeze("streams")`, until `stopFreezing()`: every connection that behaves like a stream (the server sends
 *   bytes `streamAfterMs` or more after the client last sent any: a watch delivering an event) is frozen when it
 *   shows that behaviour, including connections opened while the window is on. Request/response traffic passes.
 *
 * A frozen connection stays frozen until the client gives up on it: what either side sends is dropped, and when
 * the server closes its side the client is not told. Nothing is buffered for later.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";

export interface TcpProxyOptions {
  /** The server to forward to. */
  target: { host: string; port: number };
  /** Listen port on 127.0.0.1; 0 picks a free one. */
  port?: number;
  /** A server→client chunk this long after the client's last bytes marks the connection as a stream. */
  streamAfterMs?: number;
  now?: () => number;
}

export interface TcpProxyStats {
  /** Connections accepted so far. */
  accepted: number;
  open: number;
  /** Open connections seen to behave like streams. */
  streams: number;
  /** Open connections frozen now. */
  frozen: number;
  /** Connections frozen so far. */
  frozenTotal: number;
  /** Connections that could not reach the target (refused: the client's socket is reset). */
  refused: number;
}

interface Link {
  id: number;
  client: Socket;
  upstream: Socket;
  openedAt: number;
  lastClientDataAt: number;
  stream: boolean;
  frozen: boolean;
}

export class TcpProxy {
  readonly #options: Required<Omit<TcpProxyOptions, "port">> & { port: number };
  readonly #links = new Set<Link>();
  #server: Server | undefined;
  #port = 0;
  #seq = 0;
  #freezingStreams = false;
  #stats = { accepted: 0, frozenTotal: 0, refused: 0 };

  constructor(options: TcpProxyOptions) {
    this.#options = {
      target: options.target,
      port: options.port ?? 0,
      streamAfterMs: options.streamAfterMs ?? 3000,
      now: options.now ?? Date.now,
    };
  }

  get port(): number {
    return this.#port;
  }

  async start(): Promise<number> {
    const server = createServer((client) => this.#accept(client));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.#options.port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
    const addr = server.address();
    this.#port = typeof addr === "object" && addr ? addr.port : 0;
    return this.#port;
  }

  /** Freezes every open connection (`all`), or streams from now until `stopFreezing()` (`streams`). */
  freeze(mode: "all" | "streams"): number {
    let n = 0;
    if (mode === "streams") this.#freezingStreams = true;
    for (const link of this.#links) {
      if (link.frozen) continue;
      if (mode === "all" || link.stream) {
        this.#freezeLink(link);
        n++;
      }
    }
    return n;
  }

  /** Ends a `streams` window: connections frozen so far stay frozen; new streams pass. */
  stopFreezing(): void {
    this.#freezingStreams = false;
  }

  get freezingStreams(): boolean {
    return this.#freezingStreams;
  }

  stats(): TcpProxyStats {
    let streams = 0;
    let frozen = 0;
    for (const l of this.#links) {
      if (l.stream) streams++;
      if (l.frozen) frozen++;
    }
    return { ...this.#stats, open: this.#links.size, streams, frozen };
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    this.#freezingStreams = false;
    for (const l of this.#links) {
      l.client.destroy();
      l.upstream.destroy();
    }
    this.#links.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #freezeLink(link: Link): void {
    link.frozen = true;
    this.#stats.frozenTotal++;
    // Keep reading (and dropping) so that neither side is held up by back-pressure, and never close the client.
    link.client.resume();
    link.upstream.resume();
  }

  #accept(client: Socket): void {
    this.#stats.accepted++;
    const now = this.#options.now();
    const upstream = tcpConnect({ host: this.#options.target.host, port: this.#options.target.port });
    const link: Link = {
      id: ++this.#seq,
      client,
      upstream,
      openedAt: now,
      lastClientDataAt: now,
      stream: false,
      frozen: false,
    };
    this.#links.add(link);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
    });
    client.on("data", (chunk: Buffer) => {
      if (link.frozen) return;
      link.lastClientDataAt = this.#options.now();
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once("drain", () => {
          if (!link.frozen) client.resume();
        });
      }
    });
    upstream.on("data", (chunk: Buffer) => {
      if (link.frozen) return;
      if (!link.stream && this.#options.now() - link.lastClientDataAt >= this.#options.streamAfterMs) {
        link.stream = true;
      }
      if (link.stream && this.#freezingStreams) {
        this.#freezeLink(link);
        return;
      }
      if (!client.write(chunk)) {
        upstream.pause();
        client.once("drain", () => {
          if (!link.frozen) upstream.resume();
        });
      }
    });
    const forget = () => this.#links.delete(link);
    client.on("error", () => {});
    upstream.on("error", () => {});
    client.on("close", () => {
      forget();
      upstream.destroy();
    });
    upstream.on("close", () => {
      if (!connected) this.#stats.refused++;
      // A frozen connection hides the server's close from the client: it just stays silent.
      if (link.frozen) return;
      if (connected) client.end();
      else client.resetAndDestroy();
    });
    client.on("end", () => {
      if (!link.frozen) upstream.end();
    });
  }
}
