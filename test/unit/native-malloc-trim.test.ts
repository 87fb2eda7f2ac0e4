/**
 * The addon's `mallocTrim` (glibc malloc_trim(0)) and the agent's use of it: on this Debian
 * (glibc) machine it exists and reports a trim, so the agent's releaseFreedMemory really hands
 * freed heap back after a burst of minting (docs/performance.md, "Agent").
 */
import { describe, expect, it } from 'vitest';
import { releaseFreedMemory } from '../../src/agent/manager/release-memory.js';
import { loadNativeAddon } from '../../src/native/addon.js';

describe('native mallocTrim', () => {
  it('exists on glibc and the agent uses it', () => {
    const addon = loadNativeAddon() as { mallocTrim?: () => boolean };
    expect(typeof addon.mallocTrim).toBe('function');
    // Free a few MB of C heap (Buffers are malloc'd), then trim.
    const bufs = Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024, 1));
    bufs.length = 0;
    expect(typeof addon.mallocTrim!()).toBe('boolean');
    expect(releaseFreedMemory()).toBe(true);
  });
});
