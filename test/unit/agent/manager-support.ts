/**
 * Fixtures for the agent manager unit tests: a real LevelDB store in a temp dir (with a count of
 * its write batches), a manual clock, and a fake agent API server — a real CA minted by the
 * library that signs CSRs and JWT-SVIDs, an entry table with revisions, and switches for an
 * unreachable server and for SPIRE's PermissionDenied rejections.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { Code, ConnectError } from '@connectrpc/connect';
import type { AgentSvid, AttestAgentResult } from '../../../src/agent/attestation/attest-agent.js';
import type { AgentNodeAttestor } from '../../../src/agent/attestation/node-attestor.js';
import { ManagedStore } from '../../../src/agent/manager/managed-store.js';
import type {
  AgentRejection,
  AgentServerClient,
  AuthorizedEntries,
  IssuedJwtSvid,
  X509SvidParam,
  X509SvidResult,
} from '../../../src/agent/manager/server-client.js';
import type { AgentStore } from '../../../src/agent/storage/agent-store.js';
import { openAgentStore } from '../../../src/agent/storage/open-agent-store.js';
import type { BundleRecord, EntryRecord } from '../../../src/agent/storage/records.js';
import { ManualClock } from '../../../src/common/clock.js';
import type { Signer } from '../../../src/common/signer.js';
import { types } from '../../../src/protocol/index.js';
import { parseTrustDomain } from '../../../src/spiffe/id.js';
import { mintJwtSvid } from '../../../src/spiffe/jwt-svid.js';
import {
  mintX509CaCertificate,
  mintX509SvidFromCsr,
  X509SvidMinter,
} from '../../../src/spiffe/x509-mint.js';
import { memorySigner } from '../spiffe/x509-support.js';

export const TD = parseTrustDomain('example.org');
export const START = Date.UTC(2026, 0, 1);
const DAY = 86_400_000;

/** A temp dir with a real agent store; `batches` counts committed write batches. */
export interface StoreFixture {
  readonly dir: string;
  readonly clock: ManualClock;
  store: AgentStore;
  managed: ManagedStore;
  /** Committed writes (each is one LevelDB batch). */
  batches: number;
  /** Closes and reopens the store (a restart). */
  reopen(): Promise<void>;
  close(): Promise<void>;
}

function counting(f: StoreFixture, store: AgentStore): AgentStore {
  const update = store.update.bind(store);
  store.update = async (build) => {
    const before = store.snapshot.revision;
    const after = await update(build);
    // Every committed write is one LevelDB batch; an empty transaction writes nothing.
    if (after.revision !== before) f.batches++;
    return after;
  };
  return store;
}

export async function storeFixture(clock = new ManualClock(START)): Promise<StoreFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'agent-mgr-'));
  const open = () => openAgentStore({ dataDir: dir, trustDomain: TD, clock });
  const f: StoreFixture = {
    dir,
    clock,
    batches: 0,
    store: undefined as unknown as AgentStore,
    managed: undefined as unknown as ManagedStore,
    async reopen() {
      await f.store.close();
      f.store = counting(f, await open());
      f.managed = new ManagedStore(f.store);
    },
    async close() {
      await f.store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  f.store = counting(f, await open());
  f.managed = new ManagedStore(f.store);
  return f;
}

/** An entry as the server would send it. */
export function entry(id: string, overrides: Partial<EntryRecord> = {}): EntryRecord {
  return {
    id,
    spiffeId: `spiffe://example.org/workload/${id}`,
    parentId: 'spiffe://example.org/spire/agent/test/node',
    selectors: [{ type: 'unix', value: `uid:${1000 + id.length}` }],
    x509SvidTtl: 0,
    jwtSvidTtl: 0,
    federatesWith: [],
    admin: false,
    downstream: false,
    expiresAt: 0,
    dnsNames: [],
    revisionNumber: 0,
    storeSvid: false,
    hint: '',
    createdAt: Math.floor(START / 1000),
    ...overrides,
  };
}

function unavailable(): ConnectError {
  return new ConnectError('connection refused', Code.Unavailable);
}

function rejected(reason: AgentRejection): ConnectError {
  if (reason === 'unauthenticated') return new ConnectError('bad chain', Code.Unauthenticated);
  const R = types.PermissionDeniedDetails_Reason;
  const map: Record<
    Exclude<AgentRejection, 'unauthenticated'>,
    types.PermissionDeniedDetails_Reason
  > = {
    expired: R.AGENT_EXPIRED,
    'not-attested': R.AGENT_NOT_ATTESTED,
    'not-active': R.AGENT_NOT_ACTIVE,
    banned: R.AGENT_BANNED,
    'must-reattest': R.AGENT_MUST_REATTEST,
  };
  return new ConnectError(`agent refused: ${reason}`, Code.PermissionDenied, undefined, [
    {
      desc: types.PermissionDeniedDetailsSchema,
      value: create(types.PermissionDeniedDetailsSchema, { reason: map[reason] }),
    },
  ]);
}

/** A fake agent API server with a real CA (see the module docs). */
export class FakeServer implements AgentServerClient {
  readonly clock: ManualClock;
  caDer!: Uint8Array;
  minter!: X509SvidMinter;
  jwtSigner!: Signer;
  /** Authorized entries by ID. */
  readonly entries = new Map<string, EntryRecord>();
  /** Default X509-SVID TTL, seconds (entries with x509SvidTtl 0). */
  x509Ttl = 3600;
  jwtTtl = 300;
  agentTtl = 3600;
  reattestable = false;
  /** Every call fails with Unavailable. */
  unreachable = false;
  /** Every authenticated call fails with this rejection. */
  rejection: AgentRejection | undefined;
  /** AttestAgent fails with InvalidArgument (a used join token). */
  refuseAttestation = false;
  /** Replaces the SPIFFE ID the server puts in workload SVIDs (a misbehaving server). */
  wrongId: string | undefined;
  /** Runs inside BatchNewX509SVID before it answers. */
  onBatch: (() => Promise<void>) | undefined;
  agentPath = '/spire/agent/test/node';
  readonly calls = {
    attest: 0,
    renew: 0,
    getBundle: 0,
    federated: 0,
    sync: 0,
    batch: 0,
    batchSizes: [] as number[],
    jwt: 0,
  };

  constructor(clock: ManualClock) {
    this.clock = clock;
  }

  static async create(clock: ManualClock): Promise<FakeServer> {
    const s = new FakeServer(clock);
    const caSigner = memorySigner('ec-p256');
    s.caDer = await mintX509CaCertificate({
      trustDomain: TD,
      subject: { country: ['US'], organization: ['SPIFFE'] },
      publicKey: caSigner.publicKey,
      notBefore: new Date(clock.nowMs() - DAY),
      notAfter: new Date(clock.nowMs() + 60 * DAY),
      signer: caSigner,
    });
    s.minter = new X509SvidMinter({ issuerCertDer: s.caDer, signer: caSigner });
    s.jwtSigner = memorySigner('ec-p256');
    return s;
  }

  get agentId(): string {
    return `spiffe://example.org${this.agentPath}`;
  }

  bundleRecord(): BundleRecord {
    return {
      trustDomain: TD.name,
      x509Authorities: [this.caDer],
      jwtAuthorities: [{ keyId: 'jwt-1', publicKey: this.jwtSigner.publicKeySpki, expiresAt: 0 }],
      refreshHint: 0,
      sequenceNumber: 1,
    };
  }

  /** Adds or updates an entry (bumping its revision when it exists). */
  put(e: EntryRecord): EntryRecord {
    const held = this.entries.get(e.id);
    const rec = {
      ...e,
      revisionNumber: held === undefined ? e.revisionNumber : held.revisionNumber + 1,
    };
    this.entries.set(e.id, rec);
    return rec;
  }

  #gate(authenticated = true): void {
    if (this.unreachable) throw unavailable();
    if (authenticated && this.rejection !== undefined) throw rejected(this.rejection);
  }

  async #sign(csr: Uint8Array, spiffeId: string, ttlSeconds: number): Promise<Uint8Array[]> {
    const now = this.clock.nowMs();
    const der = await mintX509SvidFromCsr(this.minter, csr, {
      spiffeId,
      notBefore: new Date(Math.floor((now - 10_000) / 1000) * 1000),
      notAfter: new Date(Math.floor((now + ttlSeconds * 1000) / 1000) * 1000),
    });
    return [der];
  }

  async attestAgent(attestor: AgentNodeAttestor, csr: Uint8Array): Promise<AttestAgentResult> {
    this.calls.attest++;
    this.#gate(false);
    await attestor.payload();
    if (this.refuseAttestation) {
      throw new ConnectError(
        'failed to attest: join token does not exist or has already been used',
        Code.InvalidArgument,
      );
    }
    const certChain = await this.#sign(csr, this.agentId, this.agentTtl);
    return {
      svid: {
        id: this.agentId,
        certChain,
        expiresAt: Math.floor(this.clock.nowMs() / 1000) + this.agentTtl,
      },
      reattestable: this.reattestable,
    };
  }

  async renewAgent(csr: Uint8Array): Promise<AgentSvid> {
    this.calls.renew++;
    this.#gate();
    if (this.reattestable) throw rejected('must-reattest');
    const certChain = await this.#sign(csr, this.agentId, this.agentTtl);
    return {
      id: this.agentId,
      certChain,
      expiresAt: Math.floor(this.clock.nowMs() / 1000) + this.agentTtl,
    };
  }

  async getBundle(): Promise<BundleRecord> {
    this.calls.getBundle++;
    this.#gate();
    return this.bundleRecord();
  }

  federatedBundles = new Map<string, BundleRecord>();

  async getFederatedBundle(td: string): Promise<BundleRecord | undefined> {
    this.calls.federated++;
    this.#gate();
    return this.federatedBundles.get(td);
  }

  async syncAuthorizedEntries(known: ReadonlyMap<string, number>): Promise<AuthorizedEntries> {
    this.calls.sync++;
    this.#gate();
    const revisions = new Map<string, number>();
    const changed: EntryRecord[] = [];
    for (const e of this.entries.values()) {
      revisions.set(e.id, e.revisionNumber);
      if (known.get(e.id) !== e.revisionNumber) changed.push(e);
    }
    return { revisions, changed, invalid: [] };
  }

  async batchNewX509Svid(params: readonly X509SvidParam[]): Promise<readonly X509SvidResult[]> {
    this.calls.batch++;
    this.calls.batchSizes.push(params.length);
    this.#gate();
    await this.onBatch?.();
    return Promise.all(
      params.map(async (p): Promise<X509SvidResult> => {
        const e = this.entries.get(p.entryId);
        if (e === undefined) {
          return { ok: false, code: Code.NotFound, message: 'entry not found or not authorized' };
        }
        const id = this.wrongId ?? e.spiffeId;
        const certChain = await this.#sign(p.csr, id, e.x509SvidTtl || this.x509Ttl);
        return { ok: true, spiffeId: id, certChain };
      }),
    );
  }

  async newJwtSvid(entryId: string, audience: readonly string[]): Promise<IssuedJwtSvid> {
    this.calls.jwt++;
    this.#gate();
    const e = this.entries.get(entryId);
    if (e === undefined) throw new ConnectError('entry not found or not authorized', Code.NotFound);
    const now = this.clock.nowMs();
    const ttl = e.jwtSvidTtl || this.jwtTtl;
    const issuedAt = new Date(Math.floor(now / 1000) * 1000);
    const expiresAt = new Date(issuedAt.getTime() + ttl * 1000);
    const token = await mintJwtSvid({
      signer: this.jwtSigner,
      keyId: 'jwt-1',
      spiffeId: e.spiffeId,
      audience,
      issuedAt,
      expiresAt,
    });
    return { token, issuedAtMs: issuedAt.getTime(), expiresAtMs: expiresAt.getTime() };
  }

  close(): void {}
}

/** A node attestor that counts its uses. */
export function fakeAttestor(type = 'x509pop'): AgentNodeAttestor & { uses: number } {
  const a = {
    type,
    uses: 0,
    payload: async () => {
      a.uses++;
      return new Uint8Array([1]);
    },
    respond: async () => new Uint8Array(),
  };
  return a;
}

/** Lets pending promise callbacks (store writes, server calls) run. */
export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
