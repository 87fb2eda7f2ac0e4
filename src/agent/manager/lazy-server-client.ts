/**
 * An {@link AgentServerClient} that loads the real one (server-client.ts: connect's client,
 * the agent API's descriptors, the attestation code) on its first call. The agent creates its
 * server client before the Workload API listens; with this, none of that is loaded until the
 * managers first talk to the server — after a warm agent already serves workloads
 * (docs/performance.md, "Agent").
 *
 * Behaviour is the real client's: every call is forwarded unchanged (a failure to load the
 * module rejects that call, and the next call tries again); `close` closes it once loaded and
 * makes a later load close it at once.
 */
import type {
  AgentServerClient,
  AgentServerClientOptions,
  createAgentServerClient,
} from './server-client.js';

/** The lazily loaded server client (see the module docs). */
export function createLazyAgentServerClient(
  options: AgentServerClientOptions,
  load: () => Promise<{
    createAgentServerClient: typeof createAgentServerClient;
  }> = () => import('./server-client.js'),
): AgentServerClient {
  let client: AgentServerClient | undefined;
  let loading: Promise<AgentServerClient> | undefined;
  let closed = false;
  const get = (): Promise<AgentServerClient> => {
    if (client !== undefined) return Promise.resolve(client);
    loading ??= load().then(
      (m) => {
        client = m.createAgentServerClient(options);
        if (closed) client.close();
        return client;
      },
      (err: unknown) => {
        loading = undefined;
        throw err;
      },
    );
    return loading;
  };
  return {
    attestAgent: async (attestor, csr, signal) => (await get()).attestAgent(attestor, csr, signal),
    renewAgent: async (csr, signal) => (await get()).renewAgent(csr, signal),
    getBundle: async (signal) => (await get()).getBundle(signal),
    getFederatedBundle: async (td, signal) => (await get()).getFederatedBundle(td, signal),
    syncAuthorizedEntries: async (known, signal) =>
      (await get()).syncAuthorizedEntries(known, signal),
    batchNewX509Svid: async (params, signal) => (await get()).batchNewX509Svid(params, signal),
    newJwtSvid: async (entryId, audience, signal) =>
      (await get()).newJwtSvid(entryId, audience, signal),
    close() {
      closed = true;
      client?.close();
    },
  };
}
