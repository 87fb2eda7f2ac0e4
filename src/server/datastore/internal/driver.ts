/**
 * The narrow SQL surface the shared datastore logic runs on. Two implementations: SQLite
 * (better-sqlite3, synchronous, wrapped and serialised) and PostgreSQL (pg pool). SQL is
 * written once with `?` placeholders; the PostgreSQL driver rewrites them to `$n`.
 */

/** One result row. */
export type Row = Record<string, unknown>;

/** Statements inside one transaction (or, for {@link SqlDriver.query}, outside any). */
export interface SqlTx {
  /** Runs a statement and returns its rows (use for SELECT and … RETURNING). */
  all(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs a statement and returns the number of rows it changed. */
  run(sql: string, params?: readonly unknown[]): Promise<number>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** How a driver error should be read. */
export interface ClassifiedError {
  kind: 'unique' | 'foreign-key' | 'retry' | 'other';
  /** The constraint name or column list the database reported (for unique / foreign-key). */
  detail: string;
}

/** A session holding the migration lock. */
export interface MigrationSession {
  /** Runs `fn` in a write transaction on the locked session. */
  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T>;
}

/** The database connection(s) behind one DataStore. */
export interface SqlDriver {
  readonly dialect: 'sqlite' | 'postgres';
  /** ` FOR UPDATE` where the database has row locks, else ''. */
  readonly forUpdate: string;
  /** SQL aggregating pairs `(a, b)` of a subquery into JSON text `[[a,b],…]` ('[]' for none). */
  jsonPairs(a: string, b: string): string;
  /** SQL aggregating `a` into JSON text `[a,…]` ('[]' for none). */
  jsonList(a: string): string;
  /** One statement outside an explicit transaction (a consistent single-statement read). */
  query(sql: string, params?: readonly unknown[]): Promise<Row[]>;
  /** Runs `fn` in a read-only consistent snapshot. */
  read<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` in a write transaction: committed when it resolves, rolled back when it throws.
   * May run `fn` again when the database asks for a retry (serialisation failure, deadlock).
   */
  write<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T>;
  /**
   * Appends change events (`keys`, all created at `createdAt`) as the last statement of a
   * write transaction. PostgreSQL takes a transaction-scoped advisory lock in the same
   * statement, before the event IDs are drawn, so IDs become visible in commit order: a
   * reader never sees event N+1 committed while event N is still to come.
   */
  insertEvents(
    tx: SqlTx,
    table: string,
    keyCol: string,
    keys: readonly string[],
    createdAt: number,
  ): Promise<void>;
  /** Runs `fn` while holding the migration lock (PostgreSQL advisory lock; SQLite: in-process). */
  exclusive<T>(fn: (session: MigrationSession) => Promise<T>): Promise<T>;
  classify(err: unknown): ClassifiedError;
  close(): Promise<void>;
}
