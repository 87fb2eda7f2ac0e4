/**
 * The pure parsers behind the workload attestors: /proc/<pid>/status, /etc/passwd and
 * /etc/group, /proc/<pid>/cgroup, the systemd unit and the container ID derived from cgroup
 * paths. Fixtures are real layouts (this machine's own /proc files, and the documented
 * cgroup v1/v2 shapes of Docker's cgroupfs and systemd drivers); property tests check
 * round trips and that arbitrary bytes only ever fail with the parser's own error code.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCgroupFile } from '../../../src/agent/workload-attestors/cgroup.js';
import {
  containerIdFromCgroupPath,
  containerIdFromCgroups,
} from '../../../src/agent/workload-attestors/container-id.js';
import { parseGroup, parsePasswd } from '../../../src/agent/workload-attestors/name-db.js';
import { effectiveId, parseProcStatus } from '../../../src/agent/workload-attestors/proc-status.js';
import {
  systemdUnitFromCgroupPath,
  systemdUnitFromCgroups,
} from '../../../src/agent/workload-attestors/systemd-unit.js';
import { SpireEdgeError } from '../../../src/common/errors.js';

const ID = `${'a'.repeat(8) + '0123456789abcdef'.repeat(3)}deadbeef`;
const ID2 = 'f'.repeat(64);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof SpireEdgeError) return err.code;
    throw err;
  }
}

const STATUS = [
  'Name:\tnginx',
  'Umask:\t0022',
  'State:\tS (sleeping)',
  'Pid:\t4242',
  'Uid:\t1000\t33\t33\t33',
  'Gid:\t1001\t34\t34\t34',
  'FDSize:\t64',
  'Groups:\t4 24 27 ',
  'VmPeak:\t  10000 kB',
  '',
].join('\n');

describe('parseProcStatus', () => {
  it('reads Uid, Gid and Groups; the effective ID is the second value', () => {
    const s = parseProcStatus(STATUS);
    expect(s).toEqual({ uids: [1000, 33, 33, 33], gids: [1001, 34, 34, 34], groups: [4, 24, 27] });
    expect(effectiveId(s.uids)).toBe(33);
    expect(effectiveId([7])).toBe(7);
  });

  it('parses this process own /proc/self/status', () => {
    const s = parseProcStatus(readFileSync('/proc/self/status', 'utf8'));
    expect(effectiveId(s.uids)).toBe(process.geteuid!());
    expect(effectiveId(s.gids)).toBe(process.getegid!());
    // Node's getgroups() always adds the effective gid (its documented choice).
    expect(new Set([...s.groups, process.getegid!()])).toEqual(new Set(process.getgroups!()));
  });

  it('treats an empty or missing Groups line as no supplementary groups', () => {
    expect(parseProcStatus('Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n').groups).toEqual([]);
    expect(parseProcStatus('Uid:\t0\nGid:\t0\n').groups).toEqual([]);
  });

  it('rejects missing lines and values that are not 32-bit IDs', () => {
    expect(codeOf(() => parseProcStatus('Gid:\t0\t0\t0\t0\n'))).toBe('ERR_PROC_STATUS_INVALID');
    expect(codeOf(() => parseProcStatus('Uid:\t0\t0\t0\t0\n'))).toBe('ERR_PROC_STATUS_INVALID');
    expect(codeOf(() => parseProcStatus('Uid:\t-1\nGid:\t0\n'))).toBe('ERR_PROC_STATUS_INVALID');
    expect(codeOf(() => parseProcStatus('Uid:\t4294967295\nGid:\t0\n'))).toBe(
      'ERR_PROC_STATUS_INVALID',
    );
    expect(codeOf(() => parseProcStatus('Uid:\t01\nGid:\t0\n'))).toBe('ERR_PROC_STATUS_INVALID');
    expect(codeOf(() => parseProcStatus('Uid:\t1 2 3 4 5\nGid:\t0\n'))).toBe(
      'ERR_PROC_STATUS_INVALID',
    );
    expect(codeOf(() => parseProcStatus('Uid:\t\nGid:\t0\n'))).toBe('ERR_PROC_STATUS_INVALID');
  });

  const id = fc.integer({ min: 0, max: 0xfffffffe });
  it('round-trips generated status files (property)', () => {
    fc.assert(
      fc.property(
        fc.array(id, { minLength: 4, maxLength: 4 }),
        fc.array(id, { minLength: 4, maxLength: 4 }),
        fc.array(id, { maxLength: 40 }),
        fc.array(fc.stringMatching(/^[A-Za-z_]{1,12}:\t[ -~]{0,20}$/), { maxLength: 5 }),
        (uids, gids, groups, noise) => {
          const text = [
            ...noise.filter((l) => !/^(Uid|Gid|Groups):/.test(l)),
            `Uid:\t${uids.join('\t')}`,
            `Gid:\t${gids.join('\t')}`,
            `Groups:\t${groups.join(' ')} `,
          ].join('\n');
          expect(parseProcStatus(text)).toEqual({ uids, gids, groups });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('fails only with ERR_PROC_STATUS_INVALID on arbitrary text (property)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc
            .array(
              fc.constantFrom('Uid:', 'Gid:', 'Groups:', '\t', ' ', '0', '12', '-', 'x', '\n'),
              {
                maxLength: 40,
              },
            )
            .map((a) => a.join('')),
        ),
        (text) => {
          const code = codeOf(() => parseProcStatus(text));
          expect([undefined, 'ERR_PROC_STATUS_INVALID']).toContain(code);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('parsePasswd / parseGroup', () => {
  it('maps IDs to names, first entry wins, skips comments, NIS and broken lines', () => {
    const passwd = [
      'root:x:0:0:root:/root:/bin/bash',
      '# comment:x:5:5::/:/bin/sh',
      '+nis::::::',
      'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin',
      'shadow-root:x:0:0:dup:/root:/bin/sh',
      'short:x:44',
      ':x:45:45::/:/bin/sh',
      'neg:x:-1:0::/:/bin/sh',
      'crlf:x:1000:1000::/home/crlf:/bin/sh\r',
      '',
    ].join('\n');
    const users = parsePasswd(passwd);
    expect([...users]).toEqual([
      [0, 'root'],
      [33, 'www-data'],
      [1000, 'crlf'],
    ]);
    const groups = parseGroup('root:x:0:\nsudo:x:27:alice,bob\nbad:x:z:\nadm:x:4\n');
    expect([...groups]).toEqual([
      [0, 'root'],
      [27, 'sudo'],
    ]);
  });

  it('parses this machine /etc/passwd and /etc/group', () => {
    expect(parsePasswd(readFileSync('/etc/passwd', 'utf8')).get(0)).toBe('root');
    expect(parseGroup(readFileSync('/etc/group', 'utf8')).get(0)).toBe('root');
  });

  it('round-trips generated databases and never throws (property)', () => {
    const name = fc.stringMatching(/^[a-z_][a-z0-9_-]{0,15}$/);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(name, fc.integer({ min: 0, max: 0xfffffffe })), {
          selector: ([, id]) => id,
          maxLength: 30,
        }),
        fc.string({ maxLength: 100 }),
        (rows, junk) => {
          const text = rows.map(([n, id]) => `${n}:x:${id}:0::/home/${n}:/bin/sh`).join('\n');
          expect([...parsePasswd(text)]).toEqual(rows.map(([n, id]) => [id, n]));
          parsePasswd(junk);
          parseGroup(junk);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('parseCgroupFile', () => {
  it('reads cgroup v1, v2 and hybrid layouts', () => {
    const v1 = `12:memory:/docker/${ID}\n3:cpu,cpuacct:/docker/${ID}\n1:name=systemd:/docker/${ID}\n`;
    expect(parseCgroupFile(v1)).toEqual([
      { hierarchyId: 12, controllers: ['memory'], path: `/docker/${ID}` },
      { hierarchyId: 3, controllers: ['cpu', 'cpuacct'], path: `/docker/${ID}` },
      { hierarchyId: 1, controllers: ['name=systemd'], path: `/docker/${ID}` },
    ]);
    expect(parseCgroupFile(`0::/system.slice/docker-${ID}.scope\n`)).toEqual([
      { hierarchyId: 0, controllers: [], path: `/system.slice/docker-${ID}.scope` },
    ]);
    // a colon inside the path is part of the path
    expect(parseCgroupFile('0::/a:b/c\n')[0]?.path).toBe('/a:b/c');
    // this process's own file
    expect(parseCgroupFile(readFileSync('/proc/self/cgroup', 'utf8')).length).toBeGreaterThan(0);
  });

  it('rejects malformed lines', () => {
    for (const bad of ['0:/x\n', 'x::/a\n', '0::relative\n', '-1::/\n', 'nonsense']) {
      expect(codeOf(() => parseCgroupFile(bad))).toBe('ERR_PROC_CGROUP_INVALID');
    }
  });

  it('round-trips generated files and fails only with its code (property)', () => {
    const entry = fc.record({
      hierarchyId: fc.integer({ min: 0, max: 100 }),
      controllers: fc.array(fc.stringMatching(/^[a-z=_]{1,10}$/), { maxLength: 3 }),
      path: fc.stringMatching(/^(\/[ -~]{0,20}){1,5}$/).filter((p) => !p.includes('\n')),
    });
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 12 }), fc.string({ maxLength: 120 }), (es, junk) => {
        const text = es
          .map((e) => `${e.hierarchyId}:${e.controllers.join(',')}:${e.path}`)
          .join('\n');
        expect(parseCgroupFile(text)).toEqual(es);
        expect([undefined, 'ERR_PROC_CGROUP_INVALID']).toContain(
          codeOf(() => parseCgroupFile(junk)),
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe('systemd unit from cgroup', () => {
  it.each([
    ['/system.slice/nginx.service', 'nginx.service'],
    ['/system.slice/nginx.service/worker', 'nginx.service'],
    ['/system.slice/system-getty.slice/getty@tty1.service', 'getty@tty1.service'],
    ['/user.slice/user-1000.slice/session-3.scope', 'session-3.scope'],
    ['/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service', 'user@1000.service'],
    ['/init.scope', 'init.scope'],
    ['/system.slice/docker.socket', 'docker.socket'],
    ['/system.slice', 'system.slice'],
    [`/system.slice/docker-${ID}.scope`, `docker-${ID}.scope`],
    ['/', undefined],
    [`/docker/${ID}`, undefined],
    ['/kubepods/besteffort/podx/abc', undefined],
    ['/weird name.service', undefined],
    ['/.service', undefined],
  ])('%s → %s', (path, unit) => {
    expect(systemdUnitFromCgroupPath(path)).toBe(unit);
  });

  it('prefers the name=systemd hierarchy, else the unified line', () => {
    expect(
      systemdUnitFromCgroups(
        parseCgroupFile(
          '4:memory:/x\n1:name=systemd:/system.slice/a.service\n0::/system.slice/b.service\n',
        ),
      ),
    ).toBe('a.service');
    expect(
      systemdUnitFromCgroups(parseCgroupFile('4:memory:/x\n0::/system.slice/b.service\n')),
    ).toBe('b.service');
    expect(systemdUnitFromCgroups(parseCgroupFile('4:memory:/system.slice/c.service\n'))).toBe(
      undefined,
    );
  });

  it('finds the first non-slice unit below any slices (property)', () => {
    const seg = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,10}$/);
    fc.assert(
      fc.property(
        fc.array(seg, { maxLength: 4 }),
        seg,
        fc.constantFrom('.service', '.scope', '.socket', '.mount', '.swap'),
        fc.array(fc.stringMatching(/^[ -.0-~]{1,12}$/), { maxLength: 4 }),
        (slices, name, suffix, tail) => {
          const unit = name + suffix;
          const path = `/${[...slices.map((s) => `${s}.slice`), unit, ...tail].join('/')}`;
          expect(systemdUnitFromCgroupPath(path)).toBe(unit);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('container ID from cgroup', () => {
  it.each([
    [`/docker/${ID}`, ID],
    [`/system.slice/docker-${ID}.scope`, ID],
    [`/kubepods/besteffort/pod1234/${ID}`, ID],
    [`/kubepods.slice/kubepods-pod1.slice/cri-containerd-${ID}.scope`, ID],
    [`/docker/${ID}/sub/cgroup`, ID],
    [`/docker/${ID2}/kubepods/x/${ID}`, ID],
    [`/docker/${ID}f`, undefined],
    [`/docker/${ID.slice(1)}`, undefined],
    ['/system.slice/nginx.service', undefined],
    ['/', undefined],
  ])('%s → %s', (path, id) => {
    expect(containerIdFromCgroupPath(path)).toBe(id);
  });

  it('agrees across hierarchies and refuses two different containers', () => {
    const v1 = parseCgroupFile(`4:memory:/docker/${ID}\n1:name=systemd:/docker/${ID}\n0::/\n`);
    expect(containerIdFromCgroups(v1)).toBe(ID);
    expect(containerIdFromCgroups(parseCgroupFile('0::/user.slice\n'))).toBeUndefined();
    const conflict = parseCgroupFile(`4:memory:/docker/${ID}\n0::/docker/${ID2}\n`);
    expect(codeOf(() => containerIdFromCgroups(conflict))).toBe('ERR_DOCKER_CONTAINER_ID_CONFLICT');
  });

  it('finds a 64-hex ID wherever it sits between non-word characters (property)', () => {
    const hex = fc.stringMatching(/^[0-9a-f]{64}$/);
    const plain = fc.stringMatching(/^[g-z/._-]{0,12}$/);
    fc.assert(
      fc.property(
        plain,
        hex,
        fc.stringMatching(/^[.-][a-z]{0,6}$/),
        plain,
        (before, id, after, tail) => {
          const path = `/${before}/docker-${id}${after}/${tail}`;
          expect(containerIdFromCgroupPath(path)).toBe(id);
          expect(containerIdFromCgroupPath(`/${before}/${id}0${after}`)).toBeUndefined();
        },
      ),
      { numRuns: 300 },
    );
  });
});
