/**
 * Device enrollment with one-time provisioning tokens (ours, not SPIRE's; docs/server-api.md
 * "Device enrollment", docs/tpm-enroll.md): the admin service that issues tokens, the
 * enrollment service devices call on the agent API port, and {@link createEnrollmentServices}
 * which builds both for `spire-server run`.
 */
import type { ConnectRouter } from '@connectrpc/connect';
import { enrollmentv1 } from '../../../protocol/index.js';
import {
  createEnrollmentService,
  ENROLLMENT_PROCEDURES,
  type EnrollmentServiceOptions,
} from './enroll-service.js';
import { createProvisioningTokenService } from './token-service.js';

export {
  createEnrollmentService,
  ENROLLMENT_PROCEDURES,
  type EnrollmentErrorCode,
  type EnrollmentService,
  type EnrollmentServiceOptions,
  type EnrollmentTpmSettings,
} from './enroll-service.js';
export {
  DEFAULT_PROVISIONING_TOKEN_TTL,
  newProvisioningToken,
  PROVISIONING_TOKEN_BYTES,
  PROVISIONING_TOKEN_PATTERN,
  TOKEN_REFUSED_MESSAGE,
  tokenFingerprint,
} from './provisioning-token.js';
export { createProvisioningTokenService, type ProvisioningTokenService } from './token-service.js';

/** The two halves of device enrollment, ready to mount. */
export interface EnrollmentServices {
  /** Registers `spire_edge.enrollment.v1.ProvisioningToken` (admin socket only). */
  registerAdmin(router: ConnectRouter): void;
  /**
   * The device-facing service for the agent API listener: its routes and the procedures
   * that must be let through without an agent SVID.
   */
  readonly agentApi: {
    readonly procedures: readonly string[];
    register(router: ConnectRouter): void;
  };
}

/**
 * Builds the admin and device-facing enrollment services over one context. `tpm` is the
 * server's `NodeAttestor "tpm"` settings, absent when it has none (EnrollDevice then answers
 * FailedPrecondition; tokens can still be issued).
 */
export function createEnrollmentServices(options: EnrollmentServiceOptions): EnrollmentServices {
  const enroll = createEnrollmentService(options);
  const tokens = createProvisioningTokenService(options.context);
  return {
    registerAdmin: (router) => {
      router.service(enrollmentv1.ProvisioningToken, tokens);
    },
    agentApi: {
      procedures: ENROLLMENT_PROCEDURES,
      register: (router) => {
        router.service(enrollmentv1.Enrollment, enroll);
      },
    },
  };
}
