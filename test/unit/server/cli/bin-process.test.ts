/**
 * `./bin/spire-server` as a real process (the installed entry point: bin/launch.js loading
 * dist/server/cli/main.js) against a real admin server (SQLite datastore, CA manager) on a Unix
 * socket, as an operator's script runs it: exit codes, stdout/stderr, stdin for `-data -`.
 *
 * The compiled output is what runs: when dist/ is missing or older than src/, beforeAll builds
 * it with `tsc -p tsconfig.build.json` (what `npm run build:ts` and scripts/setup.sh run).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCommand, SPIRE_SERVER } from '../../../e2e/support.js';
import { type RealAdmin, startRealAdmin, TD } from './support.js';

const spireServer = (args: string[], stdin = '') => runCommand(SPIRE_SERVER, args, { stdin });

let admin: RealAdmin;

beforeAll(async () => {
  ensureBuilt();
  admin = await startRealAdmin();
}, 180_000);
afterAll(async () => {
  await admin?.close();
});

describe('./bin/spire-server as a process', () => {
  it('creates an entry and shows it, with exit code 0', async () => {
    const created = await spireServer([
      'entry',
      'create',
      '-parentID',
      `spiffe://${TD}/spire/agent/join_token/t1`,
      '-spiffeID',
      `spiffe://${TD}/web`,
      '-selector',
      'unix:uid:1000',
      '-x509SVIDTTL',
      '600',
      '-socketPath',
      admin.socketPath,
    ]);
    expect(created.err).toBe('');
    expect(created.code).toBe(0);
    expect(created.out).toMatch(
      new RegExp(
        `^Entry ID {16}: [\\w-]+\\nSPIFFE ID {15}: spiffe://${TD}/web\\nParent ID {15}: spiffe://${TD}/spire/agent/join_token/t1\\nRevision {16}: 0\\nX509-SVID TTL {11}: 600\\nJWT-SVID TTL {12}: default\\nSelector {16}: unix:uid:1000\\n\\n$`,
      ),
    );
    const shown = await spireServer([
      'entry',
      'show',
      '-spiffeID',
      `spiffe://${TD}/web`,
      '-output',
      'json',
      '-socketPath',
      admin.socketPath,
    ]);
    expect(shown.code).toBe(0);
    const json = JSON.parse(shown.out) as { entries: Array<{ spiffe_id: { path: string } }> };
    expect(json.entries.map((e) => e.spiffe_id.path)).toEqual(['/web']);
  });

  it('reads -data from stdin and fails with exit 1 on a refused entry', async () => {
    const data = JSON.stringify({
      entries: [
        {
          spiffe_id: `spiffe://${TD}/web`,
          parent_id: `spiffe://${TD}/spire/agent/join_token/t1`,
          selectors: [{ type: 'unix', value: 'uid:1000' }],
        },
        {
          spiffe_id: `spiffe://${TD}/db`,
          parent_id: `spiffe://${TD}/spire/agent/join_token/t1`,
          selectors: [{ type: 'unix', value: 'uid:2000' }],
        },
      ],
    });
    const r = await spireServer(
      ['entry', 'create', '-data', '-', '-socketPath', admin.socketPath],
      data,
    );
    expect(r.code).toBe(1);
    expect(r.out).toContain(`SPIFFE ID               : spiffe://${TD}/db\n`);
    expect(r.err).toMatch(
      /^Failed to create the following entry \(code: AlreadyExists, msg: "similar entry already exists"\):\n[\s\S]+Error: failed to create one or more entries\n$/,
    );
    const count = await spireServer(['entry', 'count', '-socketPath', admin.socketPath]);
    expect(count).toEqual({ code: 0, out: '2 registration entries\n', err: '' });
  });

  it('exits 1 with SPIRE errors, 0 for -h, 127 for an unknown command', async () => {
    const missing = await spireServer([
      'entry',
      'show',
      '-entryID',
      'nope',
      '-socketPath',
      admin.socketPath,
    ]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(
      /^Error: error fetching entry ID nope: rpc error: code = NotFound desc = /,
    );
    const noServer = await spireServer([
      'healthcheck',
      '-socketPath',
      join(admin.dir, 'none.sock'),
    ]);
    expect(noServer).toEqual({
      code: 1,
      out: '',
      err: 'Error: server is unhealthy: unable to determine health\n',
    });
    const help = await spireServer(['entry', 'create', '-h']);
    expect(help.code).toBe(0);
    expect(help.out).toBe('');
    expect(help.err).toMatch(/^Usage of entry create:\n[\s\S]+\nflag: help requested\n$/);
    const unknown = await spireServer(['nosuchcommand']);
    expect(unknown.code).toBe(127);
    expect(unknown.err).toMatch(
      /^Usage: spire-server \[--version\] \[--help\] <command> \[<args>\]\n/,
    );
  });
});
