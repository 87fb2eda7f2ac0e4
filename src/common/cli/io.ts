/**
 * The environment a command runs in, passed in (never read from `process`) so that tests
 * capture output and feed input: SPIRE's `commoncli.Env` shape.
 */
import { SpireEdgeError } from '../errors.js';

/** Where a command writes text (`process.stdout`, or a test's collector). */
export interface CliWriter {
  write(chunk: string): unknown;
}

/** The streams and environment variables of one command invocation. */
export interface CliIo {
  readonly stdout: CliWriter;
  readonly stderr: CliWriter;
  /** Standard input, read only by commands that take data from `-` or a missing path. */
  readonly stdin: AsyncIterable<string | Uint8Array>;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory that relative paths are resolved against (default: the process's). */
  readonly cwd?: string;
}

/** The largest input a command reads from stdin or a data file (SPIRE has no cap; 64 MiB). */
export const MAX_CLI_INPUT_BYTES = 64 * 1024 * 1024;

/**
 * Reads all of `stdin` as bytes; the content is unchecked, only its size is limited.
 *
 * @throws SpireEdgeError `ERR_CLI_INPUT_TOO_LARGE` beyond `maxBytes`.
 */
export async function readAllInput(
  stdin: AsyncIterable<string | Uint8Array>,
  maxBytes: number = MAX_CLI_INPUT_BYTES,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.from(chunk);
    total += b.length;
    if (total > maxBytes) {
      throw new SpireEdgeError(
        'ERR_CLI_INPUT_TOO_LARGE',
        `input is larger than ${String(maxBytes)} bytes`,
      );
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** A {@link CliWriter} that keeps what is written, for tests and for buffering. */
export class StringWriter implements CliWriter {
  #text = '';

  write(chunk: string): boolean {
    this.#text += chunk;
    return true;
  }

  /** Everything written so far. */
  get text(): string {
    return this.#text;
  }
}
