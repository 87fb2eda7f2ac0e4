/**
 * Hands memory the C allocator keeps after a burst of work back to the OS: glibc's
 * `malloc_trim(0)` through the native addon's `mallocTrim`, when the addon offers it; otherwise
 * nothing happens.
 *
 * Why: minting many SVIDs (key generation, CSR signatures, TLS and HTTP/2 buffers) leaves
 * several megabytes that glibc has freed but keeps mapped, and counts in the agent's resident
 * memory until something reuses it (measured: an agent with 1,000 freshly minted SVIDs went from
 * 89.6 to 80.4 MB after `malloc_trim(0)`; docs/performance.md, "Agent"). The SVID cache calls
 * this after a reconcile that minted many SVIDs (cache.ts).
 *
 * Never throws: a missing addon or function is not an error here.
 */
import { loadNativeAddon } from '../../native/addon.js';

/** Whether a trim happened (false: the addon or its `mallocTrim` is not available). */
export function releaseFreedMemory(): boolean {
  let trim: (() => unknown) | undefined;
  try {
    trim = (loadNativeAddon() as { mallocTrim?: () => unknown }).mallocTrim;
  } catch {
    return false;
  }
  if (typeof trim !== 'function') return false;
  try {
    // With --expose-gc (bin/spire-agent sets it) collect first, so the buffers the burst left
    // unreachable are freed to the C heap before it is trimmed.
    (globalThis as { gc?: () => void }).gc?.();
    trim();
    return true;
  } catch {
    return false;
  }
}
