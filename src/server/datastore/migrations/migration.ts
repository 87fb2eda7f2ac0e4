/**
 * One schema migration: a version number, a name, and the SQL script for each dialect.
 * Migrations are applied in version order, each inside its own transaction, and recorded in
 * the `migrations` table. A script must be correct on a database at the previous version
 * (never edit a shipped migration: add a new one).
 */
export interface Migration {
  /** 1, 2, 3, … without gaps. */
  readonly version: number;
  /** A short description, recorded in the `migrations` table. */
  readonly name: string;
  /** The script for SQLite. */
  readonly sqlite: string;
  /** The script for PostgreSQL. */
  readonly postgres: string;
}
