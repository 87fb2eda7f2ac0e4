/**
 * Public names of the PKCS#11 (HSM) support: the `pkcs11` KeyManager and UpstreamAuthority,
 * their settings, RFC 7512 URIs and the CKR table. See docs/hsm.md.
 */

export {
  CKR_NAMES,
  ckrCode,
  ckrName,
  hsmCkrError,
  isConnectionLoss,
  isPermanentLoginFailure,
} from './ckr.js';
export {
  type Pkcs11KeyManagerSettings,
  type Pkcs11TokenConfig,
  type Pkcs11UpstreamAuthoritySettings,
  pkcs11KeyManagerSettingsFromPluginData,
  pkcs11UpstreamAuthoritySettingsFromPluginData,
  type ResolvedPkcs11Token,
  resolvePkcs11Token,
} from './config.js';
export {
  ckaIdForLabel,
  DEFAULT_KEY_ID_LENGTH,
  DEFAULT_KEY_LABEL_PREFIX,
  openPkcs11KeyManager,
  Pkcs11KeyManager,
  type Pkcs11KeyManagerConfig,
} from './key-manager.js';
export type { TokenListing, TokenSelector } from './module.js';
export {
  DEFAULT_SESSION_POOL_SIZE,
  type Pkcs11Health,
} from './session-pool.js';
export {
  PKCS11_SIGNING_MODES,
  type Pkcs11SigningMode,
  type Pkcs11SigningPath,
  type SigningModeOptions,
} from './signing-mode.js';
export {
  openPkcs11UpstreamAuthority,
  Pkcs11UpstreamAuthority,
  type Pkcs11UpstreamAuthorityConfig,
  type ProvisionPkcs11RootOptions,
  provisionPkcs11UpstreamRoot,
} from './upstream-authority.js';
export { formatPkcs11Uri, type Pkcs11ObjectType, type Pkcs11Uri, parsePkcs11Uri } from './uri.js';
