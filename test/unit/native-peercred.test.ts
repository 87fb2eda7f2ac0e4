import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNativeAddon } from '../../src/native/addon.js';

const addon = loadNativeAddon();
const dir = mkdtempSync(join(tmpdir(), 'peercred-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fdOf(s: net.Socket): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

async function acceptOne(
  server: net.Server,
  connect: () => net.Socket,
): Promise<[net.Socket, net.Socket]> {
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = connect();
  return [await accepted, client];
}

describe('native peerCred', () => {
  it('reports this process as the peer of a Unix socket', async () => {
    const path = join(dir, 's.sock');
    const server = net.createServer().listen(path);
    await new Promise((r) => server.once('listening', r));
    const [conn, client] = await acceptOne(server, () => net.connect(path));
    const cred = addon.peerCred(fdOf(conn));
    expect(cred).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    client.destroy();
    conn.destroy();
    server.close();
  });

  it('refuses a TCP socket instead of returning uid 4294967295', async () => {
    const server = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as net.AddressInfo;
    const [conn, client] = await acceptOne(server, () => net.connect(port, '127.0.0.1'));
    expect(() => addon.peerCred(fdOf(conn))).toThrow(
      expect.objectContaining({ code: 'ERR_NATIVE_ERRNO', syscall: 'peerCred' }),
    );
    client.destroy();
    conn.destroy();
    server.close();
  });

  it('a pidfd tells whether the process is alive', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn('sleep', ['30']);
    await new Promise((r) => child.once('spawn', r));
    const fd = addon.pidfdOpen(child.pid!);
    expect(addon.pidfdAlive(fd)).toBe(true);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(addon.pidfdAlive(fd)).toBe(false);
    addon.closeFd(fd);
    expect(() => addon.pidfdOpen(-1)).toThrow(TypeError);
  });
});
