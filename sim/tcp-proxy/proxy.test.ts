import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { TcpProxy } from "./index.ts";

/**
 * A line server: "echo X" answers "X"; "push" makes the server push "event N" whenever the test calls `push()`
 * (a watch-like stream); "close" makes it close the connection.
 */
function lineServer() {
  const pushers = new Set<Socket>();
  let count = 0;
  const server: Server = createServer((s) => {
    s.on("error", () => {});
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString();
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith("echo ")) s.write(`${line.slice(5)}\n`);
        else if (line === "push") pushers.add(s);
        else if (line === "close") s.end();
      }
    });
    s.on("close", () => pushers.delete(s));
  });
  return {
    server,
    push: () => {
      count++;
      for (const s of pushers) s.write(`event ${count}\n`);
    },
    closePushers: () => {
      for (const s of pushers) s.end();
    },
  };
}

/** A client that collects lines and notes whether its socket closed. */
async function client(port: number) {
  const socket = tcpConnect({ host: "127.0.0.1", port });
  await once(socket, "connect");
  const lines: string[] = [];
  let closed = false;
  let buf = "";
  socket.on("data", (d) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  socket.on("close", () => {
    closed = true;
  });
  socket.on("error", () => {});
  const waitLines = async (n: number, timeoutMs = 5000) => {
    const deadline = Date.now() + timeoutMs;
    while (lines.length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} lines, got ${JSON.stringify(lines)}`);
      await sleep(5);
    }
  };
  return { socket, lines, waitLines, closed: () => closed, send: (l: string) => socket.write(`${l}\n`) };
}

describe("TcpProxy", () => {
  const world = lineServer();
  let target = 0;
  let clock = 0;
  const now = () => clock;
  before(async () => {
    await new Promise<void>((r) => world.server.listen(0, "127.0.0.1", r));
    const addr = world.server.address();
    target = typeof addr === "object" && addr ? addr.port : 0;
  });
  after(() => new Promise<void>((r) => world.server.close(() => r())));

  test("forwards both ways and passes closes through", async () => {
    const proxy = new TcpProxy({ target: { host: "127.0.0.1", port: target }, now });
    const port = await proxy.start();
    const c = await client(port);
    c.send("echo hello");
    await c.waitLines(1);
    assert.deepEqual(c.lines, ["hello"]);
    c.send("close");
    while (!c.closed()) await sleep(5);
    assert.equal(proxy.stats().accepted, 1);
    await proxy.close();
  });

  test("freeze('all'): open connections go silent without closing; new connections pass", async () => {
    const proxy = new TcpProxy({ target: { host: "127.0.0.1", port: target }, now });
    const port = await proxy.start();
    const old = await client(port);
    old.send("echo one");
    await old.waitLines(1);
    assert.equal(proxy.freeze("all"), 1);
    old.send("echo two");
    old.send("close");
    const fresh = await client(port);
    fresh.send("echo three");
    await fresh.waitLines(1);
    assert.deepEqual(fresh.lines, ["three"]);
    await sleep(100);
    assert.deepEqual(old.lines, ["one"], "nothing more reaches the frozen client");
    assert.equal(old.closed(), false, "and it is not told that anything happened");
    assert.equal(proxy.stats().frozen, 1);
    old.socket.destroy();
    fresh.socket.destroy();
    await proxy.close();
  });

  test("freeze('streams'): a connection that receives server pushes stalls; request/response traffic passes", async () => {
    clock = 0;
    const proxy = new TcpProxy({ target: { host: "127.0.0.1", port: target }, streamAfterMs: 1000, now });
    const port = await proxy.start();
    const watch = await client(port);
    const requests = await client(port);
    watch.send("push");
    await sleep(50);
    clock += 500;
    world.push(); // half a second after the request: not yet a stream
    await watch.waitLines(1);
    proxy.freeze("streams");
    requests.send("echo a");
    await requests.waitLines(1);
    clock += 2000;
    world.push(); // two seconds after the client last spoke: a stream, frozen now
    requests.send("echo b");
    await requests.waitLines(2);
    await sleep(100);
    assert.deepEqual(watch.lines, ["event 1"], "the event after the freeze never arrives");
    assert.deepEqual(requests.lines, ["a", "b"], "requests pass (their answers come at once)");
    world.closePushers(); // the server ends the watch: the client does not learn it either
    await sleep(100);
    assert.equal(watch.closed(), false);
    proxy.stopFreezing();
    const later = await client(port);
    later.send("push");
    await sleep(50);
    clock += 5000;
    world.push();
    await later.waitLines(1);
    assert.deepEqual(later.lines, [`event ${3}`], "after the window, streams flow again");
    assert.equal(proxy.stats().frozenTotal, 1);
    for (const c of [watch, requests, later]) c.socket.destroy();
    await proxy.close();
  });

  test("a target that refuses resets the client", async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    const addr = dead.address();
    const deadPort = typeof addr === "object" && addr ? addr.port : 0;
    await new Promise<void>((r) => dead.close(() => r()));
    const proxy = new TcpProxy({ target: { host: "127.0.0.1", port: deadPort }, now });
    const port = await proxy.start();
    const c = await client(port);
    while (!c.closed()) await sleep(5);
    assert.equal(proxy.stats().refused, 1);
    await proxy.close();
  });
});
