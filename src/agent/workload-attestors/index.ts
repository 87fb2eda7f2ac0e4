/**
 * Workload attestation on the agent: the {@link WorkloadAttestor} interface, the `unix`,
 * `systemd` and `docker` attestors, the combinator that runs the configured ones, and the
 * pure parsers of `/proc` and `/etc` files they use.
 */
export { type CgroupEntry, parseCgroupFile } from './cgroup.js';
export { type CombineWorkloadAttestorsOptions, combineWorkloadAttestors } from './combine.js';
export { containerIdFromCgroupPath, containerIdFromCgroups } from './container-id.js';
export {
  createDockerWorkloadAttestor,
  DEFAULT_DOCKER_SOCKET_PATH,
  type DockerWorkloadAttestorOptions,
  dockerSelectorValues,
} from './docker.js';
export {
  DockerApiClient,
  type DockerApiClientOptions,
  type DockerContainerConfig,
  parseContainerInspect,
} from './docker-api.js';
export { type NameMap, parseGroup, parsePasswd } from './name-db.js';
export { effectiveId, type ProcStatus, parseProcStatus } from './proc-status.js';
export { formatSelector, type Selector, uniqueSelectors } from './selector.js';
export {
  createSystemdWorkloadAttestor,
  parseSystemctlFragmentPath,
  type SystemdWorkloadAttestorOptions,
} from './systemd.js';
export { systemdUnitFromCgroupPath, systemdUnitFromCgroups } from './systemd-unit.js';
export { createUnixWorkloadAttestor, type UnixWorkloadAttestorOptions } from './unix.js';
export { type AttestOptions, checkPid, type WorkloadAttestor } from './workload-attestor.js';
