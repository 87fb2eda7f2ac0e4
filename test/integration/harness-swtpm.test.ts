import { createHash, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePortPair,
  isAlive,
  listensOn,
  makeTempDir,
  removeTempDir,
  requireBinary,
  retryOnPortInUse,
  run,
  spawnService,
} from '../harness/common.js';
import {
  SWTPM_HANDLES,
  SWTPM_SCRIPT,
  type SwtpmInstance,
  startSwtpm,
  swtpmTemplateDir,
} from '../harness/swtpm.js';

let tpm: SwtpmInstance;
let scratch: string;

beforeAll(async () => {
  tpm = await startSwtpm();
  scratch = await makeTempDir('harness-swtpm-test');
});

afterAll(async () => {
  await tpm?.stop();
  if (scratch !== undefined) await removeTempDir(scratch);
});

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Reads a whole NV index (the EK certificate indices hold one DER certificate). */
async function nvCert(t: SwtpmInstance, index: number): Promise<X509Certificate> {
  const file = join(scratch, `nv-${index.toString(16)}-${Date.now()}.der`);
  await t.tpm2(['nvread', hex(index), '-o', file]);
  return new X509Certificate(await readFile(file));
}

async function pcr0(t: SwtpmInstance): Promise<string> {
  const { stdout } = await t.tpm2(['pcrread', 'sha256:0']);
  const m = /^\s*0\s*:\s*0x([0-9A-Fa-f]{64})\s*$/m.exec(stdout);
  if (m === null) throw new Error(`unexpected tpm2 pcrread output: ${stdout}`);
  return m[1]!.toLowerCase();
}

async function openssl(args: string[]): Promise<{ code: number; out: string }> {
  const r = await run(requireBinary('openssl', 'openssl'), args, { allowFailure: true });
  return { code: r.code, out: r.stdout + r.stderr };
}

describe('swtpm harness', () => {
  it('serves a TPM on the advertised TCTI, owned by the advertised pid', async () => {
    expect(tpm.tcti).toBe(`swtpm:host=127.0.0.1,port=${tpm.port}`);
    expect(await listensOn(tpm.pid, tpm.port)).toBe(true);
    expect(await listensOn(tpm.pid, tpm.ctrlPort)).toBe(true);
    const a = await tpm.tpm2(['getrandom', '8']);
    const b = await tpm.tpm2(['tpm2_getrandom', '8']);
    expect(a.stdoutBytes).toHaveLength(8);
    expect(b.stdoutBytes).toHaveLength(8);
    expect(a.stdoutBytes.equals(b.stdoutBytes)).toBe(false);
  });

  it('holds the EKs and certificates at the documented handles and NV indices', async () => {
    const nv = (await tpm.tpm2(['getcap', 'handles-nv-index'])).stdout;
    const persistent = (await tpm.tpm2(['getcap', 'handles-persistent'])).stdout;
    for (const i of [
      SWTPM_HANDLES.rsaEkCertNv,
      SWTPM_HANDLES.eccEkCertNv,
      SWTPM_HANDLES.platformCertNv,
    ]) {
      expect(nv.toLowerCase()).toContain(hex(i));
    }
    for (const h of [SWTPM_HANDLES.rsaEk, SWTPM_HANDLES.eccEk]) {
      expect(persistent.toLowerCase()).toContain(hex(h));
    }
    const rsa = await nvCert(tpm, SWTPM_HANDLES.rsaEkCertNv);
    expect(rsa.publicKey.asymmetricKeyType).toBe('rsa');
    expect(rsa.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const ecc = await nvCert(tpm, SWTPM_HANDLES.eccEkCertNv);
    expect(ecc.publicKey.asymmetricKeyType).toBe('ec');
    expect(ecc.publicKey.asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
    const root = new X509Certificate(tpm.ekCaCertPem);
    expect(root.subject).toContain('swtpm-localca-rootca');
    expect(rsa.issuer).toBe(new X509Certificate(await readText(tpm.ekCaCertPaths[1])).subject);
  });

  it('EK certificates chain to the local CA root through the intermediate (openssl verify)', async () => {
    const [root, intermediate] = tpm.ekCaCertPaths;
    for (const index of [SWTPM_HANDLES.rsaEkCertNv, SWTPM_HANDLES.eccEkCertNv]) {
      const pem = join(scratch, `ek-${index.toString(16)}.pem`);
      await writeFile(pem, (await nvCert(tpm, index)).toString());
      const ok = await openssl(['verify', '-CAfile', root, '-untrusted', intermediate, pem]);
      expect(ok.out).toContain(': OK');
      expect(ok.code).toBe(0);
      // Without the intermediate the chain cannot be built: the check above is meaningful.
      const broken = await openssl(['verify', '-CAfile', root, pem]);
      expect(broken.code).not.toBe(0);
      expect(broken.out).toMatch(/unable to get local issuer certificate/);
    }
    for (const path of Object.values(tpm.localCa)) {
      expect(typeof path === 'string' && path.length > 0).toBe(true);
    }
    expect(await readText(tpm.localCa.rootCertPath)).toBe(tpm.ekCaCertPem);
  });

  it('extends a PCR, and restart() (a reboot) resets it on the same TCTI', async () => {
    const zero = '0'.repeat(64);
    expect(await pcr0(tpm)).toBe(zero);
    const digest = createHash('sha256').update('firmware').digest();
    await tpm.tpm2(['pcrextend', `0:sha256=${digest.toString('hex')}`]);
    const expected = createHash('sha256').update(Buffer.alloc(32)).update(digest).digest('hex');
    expect(await pcr0(tpm)).toBe(expected);

    const oldPid = tpm.pid;
    const ekBefore = (await nvCert(tpm, SWTPM_HANDLES.rsaEkCertNv)).fingerprint256;
    await tpm.restart();
    expect(isAlive(oldPid)).toBe(false);
    expect(tpm.pid).not.toBe(oldPid);
    expect(await pcr0(tpm)).toBe(zero);
    expect((await nvCert(tpm, SWTPM_HANDLES.rsaEkCertNv)).fingerprint256).toBe(ekBefore);
  });

  it('uniqueEk manufactures a different EK under the same CA; reuseState keeps it', async () => {
    const stateDir = join(scratch, 'unique-state');
    const unique = await startSwtpm({ stateDir, uniqueEk: true });
    let uniqueEk: string;
    try {
      const cert = await nvCert(unique, SWTPM_HANDLES.rsaEkCertNv);
      uniqueEk = cert.fingerprint256;
      const shared = await nvCert(tpm, SWTPM_HANDLES.rsaEkCertNv);
      expect(uniqueEk).not.toBe(shared.fingerprint256);
      expect(cert.serialNumber).not.toBe(shared.serialNumber);
      expect(unique.ekCaCertPem).toBe(tpm.ekCaCertPem);
      expect(cert.checkIssued(new X509Certificate(await readText(tpm.ekCaCertPaths[1])))).toBe(
        true,
      );
    } finally {
      await unique.stop();
    }
    const again = await startSwtpm({ stateDir, reuseState: true });
    try {
      expect((await nvCert(again, SWTPM_HANDLES.rsaEkCertNv)).fingerprint256).toBe(uniqueEk);
    } finally {
      await again.stop();
    }
  });

  it('scripts/swtpm.sh serves a seeded --dir in the foreground and prints the TCTI', async () => {
    const dir = join(scratch, 'script');
    const template = await swtpmTemplateDir();
    await mkdir(dir);
    await cp(join(template, 'state'), join(dir, 'state'), { recursive: true });
    await cp(join(template, 'ca'), join(dir, 'ca'), { recursive: true });
    // swtpm needs P and P+1; another test may take them between the check and the bind, as
    // the harness itself allows for.
    let port = 0;
    const service = await retryOnPortInUse(async () => {
      port = await freePortPair();
      return spawnService({
        name: 'scripts/swtpm.sh',
        command: requireBinary('sh', 'dash'),
        args: [SWTPM_SCRIPT, '--dir', dir, '--port', String(port)],
        // exec: the script's PID becomes swtpm's.
        ready: (pid) => listensOn(pid, port),
      });
    });
    try {
      expect(service.output()).toContain(`swtpm:host=127.0.0.1,port=${port}\n`);
      expect(service.output()).toContain('reusing the TPM state');
      const r = await run(requireBinary('tpm2', 'tpm2-tools'), ['getrandom', '4'], {
        env: { TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}`, TSS2_LOG: 'all+none' },
      });
      expect(r.stdoutBytes).toHaveLength(4);
    } finally {
      await service.stop();
    }
    expect(isAlive(service.pid)).toBe(false);
    const bad = await run(requireBinary('sh', 'dash'), [SWTPM_SCRIPT, '--port', 'x'], {
      allowFailure: true,
    });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--port must be a number');
  });
  // Last: it stops the shared instance (afterAll's stop() is then a no-op).
  it('stop() ends the process, removes its temp dir and is idempotent', async () => {
    const pid = tpm.pid;
    expect(isAlive(pid)).toBe(true);
    await Promise.all([tpm.stop(), tpm.stop()]);
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(tpm.stateDir)).toBe(false);
    await expect(tpm.tpm2(['getrandom', '1'])).rejects.toMatchObject({
      code: 'ERR_HARNESS_COMMAND_FAILED',
    });
    await expect(tpm.restart()).rejects.toThrow(TypeError);
  });
});

function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}
