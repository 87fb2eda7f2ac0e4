/**
 * Structured logging for the server and the agent: text (`time=… level=info msg="…" k=v`) or
 * JSON lines, SPIRE's levels (debug, info, warn, error). Fields whose names suggest secrets
 * (`token`, `key`, `pin`, `password`, `secret`, `private…`) are replaced by `[redacted]`, so a
 * careless call cannot put a join token or a key into a log; callers still must not pass
 * secrets inside messages.
 */
import { createWriteStream } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';

export type LogFields = Readonly<Record<string, unknown>>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (for example `{ subsystem_name: 'ca_manager' }`). */
  with(fields: LogFields): Logger;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_RE = /(^|_|-)(token|key|pin|password|passwd|secret|private|credential)s?($|_|-)/i;

/** Parses SPIRE's `log_level` values case-insensitively (WARN and WARNING both work). */
export function parseLogLevel(s: string): LogLevel | undefined {
  const l = s.toLowerCase();
  if (l === 'warning') return 'warn';
  return l === 'debug' || l === 'info' || l === 'warn' || l === 'error' ? l : undefined;
}

function redact(fields: LogFields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_RE.test(k) && !/(^|_)(id|path|type|hash|count|label|prefix|ttl)$/i.test(k)) {
      out[k] = '[redacted]';
    } else if (v instanceof Error) {
      out[k] = v.message;
    } else {
      out[k] = v;
    }
  }
  return out;
}

function textValue(v: unknown): string {
  const s = typeof v === 'string' ? v : v instanceof Date ? v.toISOString() : JSON.stringify(v);
  return /^[\w./:@-]+$/.test(s ?? '') ? (s as string) : JSON.stringify(s);
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: LogFormat;
  /** Where lines go (default: process.stderr). */
  write?: (line: string) => void;
  now?: () => Date;
}

/** Creates a logger. */
export function createLogger(options: LoggerOptions = {}, base: LogFields = {}): Logger {
  const min = ORDER[options.level ?? 'info'];
  const format = options.format ?? 'text';
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields: LogFields = {}): void => {
    if (ORDER[level] < min) return;
    const all = redact({ ...base, ...fields });
    if (format === 'json') {
      write(`${JSON.stringify({ time: now().toISOString(), level, msg, ...all })}\n`);
    } else {
      const kv = Object.entries(all)
        .map(([k, v]) => `${k}=${textValue(v)}`)
        .join(' ');
      write(
        `time=${now().toISOString()} level=${level} msg=${JSON.stringify(msg)}${kv ? ` ${kv}` : ''}\n`,
      );
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    with: (fields) => createLogger(options, { ...base, ...fields }),
  };
}

/** A logger that drops everything (tests). */
export const nullLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  with: () => nullLogger,
};

/**
 * A logger from a component's `log_level`, `log_format` and optional `log_file` settings:
 * lines go to `log_file` (appended, created 0600) or to `stderr`.
 */
export function createConfiguredLogger(
  settings: { readonly logLevel: string; readonly logFormat: LogFormat; readonly logFile?: string },
  stderr: { write(line: string): unknown },
): Logger {
  const level = parseLogLevel(settings.logLevel) ?? 'info';
  const file = settings.logFile;
  if (file === undefined) {
    return createLogger({
      level,
      format: settings.logFormat,
      write: (line) => void stderr.write(line),
    });
  }
  const stream = createWriteStream(file, { flags: 'a', mode: 0o600 });
  return createLogger({
    level,
    format: settings.logFormat,
    write: (line) => void stream.write(line),
  });
}
