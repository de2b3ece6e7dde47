// UpstreamBody's contract with the reused read buffers: a buffer relayed to a client is held until the
// kernel has its bytes, then handed back; a Readable consumer gets copies, so the buffers go back at once.
// The client is a real socket that stops reading; the connection side is a small stand-in recording
// pause/resume/abort (what the pool's Call does is tested in http1-pool.test.ts).
import assert from 'node:assert/strict';
import { createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { UpstreamBody } from '../../src/upstream/body.js';
import type { Call } from '../../src/upstream/http1/pool.js';
import { takeLease, type Lease } from '../../src/upstream/http1/read-buffers.js';

interface CallRecord {
  paused: boolean;
  pauses: number;
  aborted: Error | null;
}

function standInCall(): { call: Call; record: CallRecord } {
  const record: CallRecord = { paused: false, pauses: 0, aborted: null };
  const call = {
    pause() {
      record.paused = true;
      record.pauses++;
    },
    resume() {
      record.paused = false;
    },
    abort(err: Error) {
      record.aborted ??= err;
    },
  } as unknown as Call;
  return { call, record };
}

/** `count` read buffers, each filled with its own byte value, as views of `size` bytes. */
function filledLeases(count: number, size: number): { leases: Lease[]; views: Buffer[]; expected: Buffer } {
  const leases: Lease[] = [];
  const views: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const lease = takeLease();
    lease.buffer.fill(0x41 + i, 0, size);
    leases.push(lease);
    views.push(lease.buffer.subarray(0, size));
  }
  return { leases, views, expected: Buffer.concat(views.map((v) => Buffer.from(v))) };
}

let server: Server;
let onRequest: (res: ServerResponse) => void = () => undefined;
let port = 0;

before(async () => {
  server = createServer((_req, res) => onRequest(res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** A client that reads nothing until told to, then the whole body. */
function stalledClient(): { read: () => Promise<Buffer> } {
  let resume!: () => void;
  const gate = new Promise<void>((r) => (resume = r));
  const body = new Promise<Buffer>((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
      res.pause();
      void gate.then(() => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve(Buffer.concat(parts)));
        res.resume();
      });
    });
    req.on('error', reject);
    req.end();
  });
  return {
    read: () => {
      resume();
      return body;
    },
  };
}

test('relayed buffers stay held while their bytes wait for a client that does not read, and come back after', async () => {
  const size = 64 * 1024;
  const count = 96; // 6 MiB: more than loopback's socket buffers take from a client that reads nothing
  const { leases, views, expected } = filledLeases(count, size);
  const { call, record } = standInCall();
  const counter = { bytesSent: 0 };
  let relayed!: Promise<void>;
  const responding = new Promise<void>((resolve) => {
    onRequest = (res) => {
      res.writeHead(200, { 'content-length': String(size * count) });
      const body = new UpstreamBody(call);
      relayed = body.relayTo(res, counter);
      for (let i = 0; i < count; i++) body.deliver(views[i]!, leases[i]!);
      body.finish();
      resolve();
    };
  });
  const client = stalledClient();
  await responding;
  await new Promise((r) => setTimeout(r, 200));
  const stillHeld = leases.filter((l) => l.holders > 0).length;
  assert.ok(stillHeld > 0, 'buffers whose bytes have not reached the kernel are still held');
  assert.ok(record.pauses > 0, 'the S3 side was paused');
  const got = await client.read();
  await relayed;
  assert.equal(got.length, expected.length);
  assert.ok(got.equals(expected), 'the client got every byte as delivered');
  assert.equal(counter.bytesSent, size * count);
  assert.deepEqual(
    leases.map((l) => l.holders),
    Array(count).fill(0),
    'every buffer handed back once its bytes were written',
  );
  assert.equal(record.aborted, null);
});

test('a Readable consumer gets copies: the buffers come back as soon as they are read', async () => {
  const { leases, views, expected } = filledLeases(4, 1000);
  const { call } = standInCall();
  const body = new UpstreamBody(call);
  // Delivered before anyone reads: held as views until then.
  for (let i = 0; i < 4; i++) body.deliver(views[i]!, leases[i]!);
  assert.deepEqual(
    leases.map((l) => l.holders),
    [1, 1, 1, 1],
  );
  body.finish();
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(chunk as Buffer);
  assert.deepEqual(
    leases.map((l) => l.holders),
    [0, 0, 0, 0],
  );
  // The copies do not change when the read buffers are written again.
  for (const l of leases) l.buffer.fill(0);
  assert.ok(Buffer.concat(parts).equals(expected));
});

test('destroying a body nobody read gives its held buffers back and aborts the request', () => {
  const { leases, views } = filledLeases(2, 100);
  const { call, record } = standInCall();
  const body = new UpstreamBody(call);
  body.deliver(views[0]!, leases[0]!);
  body.deliver(views[1]!, leases[1]!);
  body.destroy();
  assert.deepEqual(
    leases.map((l) => l.holders),
    [0, 0],
  );
  assert.ok(record.aborted, 'the request to S3 was aborted');
});

test('a client that leaves mid-relay aborts the request and rejects the relay', async () => {
  const { leases, views } = filledLeases(1, 1000);
  const { call, record } = standInCall();
  let relayed!: Promise<void>;
  const responding = new Promise<void>((resolve) => {
    onRequest = (res) => {
      res.writeHead(200, { 'content-length': '100000' });
      const body = new UpstreamBody(call);
      relayed = body.relayTo(res, { bytesSent: 0 });
      body.deliver(views[0]!, leases[0]!);
      resolve();
    };
  });
  const req = request({ port, host: '127.0.0.1', path: '/', agent: false }, (res) => {
    res.once('data', () => req.destroy());
  });
  req.on('error', () => undefined);
  req.end();
  await responding;
  await assert.rejects(relayed, /client closed/);
  assert.ok(record.aborted, 'the request to S3 was aborted');
});
