/**
 * The shared corpus of real captures (TPM event logs, quotes, EK certificates and roots),
 * beside the checkout at ../shared/corpus (CI clones the repository with shared/ beside it).
 * See ../shared/corpus/PROVENANCE.md for where each file comes from.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('../../../shared/corpus', import.meta.url)));

/** Absolute path of a corpus file or folder; fails loudly when the corpus is missing. */
export function corpusPath(...parts: string[]): string {
  if (!existsSync(root)) {
    throw new Error(
      `corpus not found at ${root}: the tests expect the shared/ folder beside the checkout`,
    );
  }
  return join(root, ...parts);
}

/** Reads a corpus file. */
export function readCorpus(...parts: string[]): Buffer {
  return readFileSync(corpusPath(...parts));
}

/** Lists a corpus folder, sorted. */
export function listCorpus(dir: string): string[] {
  return readdirSync(corpusPath(dir)).sort();
}
