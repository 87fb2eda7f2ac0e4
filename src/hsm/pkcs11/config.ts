/**
 * Configuration of the pkcs11 KeyManager and UpstreamAuthority: which library, which token,
 * which PIN — given as separate `plugin_data` keys or as one RFC 7512 `pkcs11:` URI — and
 * how the PIN is read (`pin`, `pin_file`, `pin_env`, or the URI's `pin-value` /
 * `pin-source`). Exactly one PIN source and at least one token selector are required; a
 * setting given both as a key and in the URI is an error, never silently overridden.
 *
 * Errors: `ERR_HSM_CONFIG_INVALID` (the settings contradict each other or are malformed,
 * naming the key), `ERR_HSM_URI_INVALID` (see uri.ts), `ERR_HSM_PIN_SOURCE` (the PIN file
 * cannot be read or the environment variable is unset or empty). The PIN never appears in
 * any message.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describeError, SpireEdgeError } from '../../common/errors.js';
import { KEY_TYPES, type KeyType } from '../../common/signer.js';
import type { TokenSelector } from './module.js';
import { PKCS11_SIGNING_MODES, type Pkcs11SigningMode } from './signing-mode.js';
import { parsePkcs11Uri } from './uri.js';

/** Token, PIN and pool settings shared by the KeyManager and the UpstreamAuthority. */
export interface Pkcs11TokenConfig {
  /** `module_path`: the PKCS#11 library. */
  readonly modulePath?: string;
  /** `token_label`. */
  readonly tokenLabel?: string;
  /** `token_serial`. */
  readonly tokenSerial?: string;
  /** `slot_id`. */
  readonly slotId?: number;
  /** `pin`: the user PIN inline (prefer `pin_file` or `pin_env`). */
  readonly pin?: string;
  /** `pin_file`: a file whose content (one trailing newline removed) is the PIN. */
  readonly pinFile?: string;
  /** `pin_env`: the name of an environment variable holding the PIN. */
  readonly pinEnv?: string;
  /** `uri`: an RFC 7512 URI for any of the above (and, for the authority, the key object). */
  readonly uri?: string;
  /** `session_pool_size`: sessions (concurrent signatures). Default 4. */
  readonly sessionPoolSize?: number;
}

/** The settings after merging the URI and reading the PIN. */
export interface ResolvedPkcs11Token {
  readonly modulePath: string;
  readonly token: TokenSelector;
  /** The PIN. Never log it. */
  readonly pin: string;
  readonly sessionPoolSize: number | undefined;
  /** The URI's `object` attribute (an object label), when given. */
  readonly objectLabel?: string;
  /** The URI's `id` attribute (CKA_ID bytes), when given. */
  readonly objectId?: Uint8Array;
}

function invalid(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_HSM_CONFIG_INVALID', `pkcs11 configuration: ${message}`);
}

function optString(v: unknown, key: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v === '') throw invalid(`${key} must be a non-empty string`);
  return v;
}

function pick<T>(
  key: string,
  direct: T | undefined,
  uriName: string,
  fromUri: T | undefined,
): T | undefined {
  if (direct !== undefined && fromUri !== undefined) {
    throw invalid(`${key} is given twice (as ${key} and as the uri's ${uriName})`);
  }
  return direct ?? fromUri;
}

/** Strips one trailing line ending, as `echo 1234 > pin` leaves one. */
function stripNewline(s: string): string {
  return s.replace(/\r?\n$/, '');
}

async function readPinFile(path: string, key: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new SpireEdgeError(
      'ERR_HSM_PIN_SOURCE',
      `pkcs11 ${key} ${path} cannot be read: ${describeError(err)}`,
      { cause: err, details: { path } },
    );
  }
  const pin = stripNewline(text);
  if (pin === '') {
    throw new SpireEdgeError('ERR_HSM_PIN_SOURCE', `pkcs11 ${key} ${path} is empty`, {
      details: { path },
    });
  }
  return pin;
}

/**
 * Merges the URI into the separate settings, checks them and reads the PIN.
 *
 * @throws SpireEdgeError `ERR_HSM_CONFIG_INVALID`, `ERR_HSM_URI_INVALID`, `ERR_HSM_PIN_SOURCE`.
 */
export async function resolvePkcs11Token(
  config: Pkcs11TokenConfig,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ResolvedPkcs11Token> {
  if (config === null || typeof config !== 'object') throw new TypeError('config is required');
  const uri = config.uri === undefined ? undefined : parsePkcs11Uri(optString(config.uri, 'uri')!);
  if (
    uri?.moduleName !== undefined &&
    uri.modulePath === undefined &&
    config.modulePath === undefined
  ) {
    throw invalid('the uri names module-name only; give module-path or module_path (a file path)');
  }
  const modulePath = pick(
    'module_path',
    optString(config.modulePath, 'module_path'),
    'module-path',
    uri?.modulePath,
  );
  if (modulePath === undefined) throw invalid('module_path is required');

  const label = pick(
    'token_label',
    optString(config.tokenLabel, 'token_label'),
    'token',
    uri?.token,
  );
  const serial = pick(
    'token_serial',
    optString(config.tokenSerial, 'token_serial'),
    'serial',
    uri?.serial,
  );
  if (
    config.slotId !== undefined &&
    (typeof config.slotId !== 'number' || !Number.isSafeInteger(config.slotId) || config.slotId < 0)
  ) {
    throw invalid('slot_id must be a non-negative whole number');
  }
  const slotId = pick('slot_id', config.slotId, 'slot-id', uri?.slotId);
  const token: TokenSelector = {
    ...(label === undefined ? {} : { label }),
    ...(serial === undefined ? {} : { serial }),
    ...(slotId === undefined ? {} : { slotId }),
    ...(uri?.manufacturer === undefined ? {} : { manufacturer: uri.manufacturer }),
    ...(uri?.model === undefined ? {} : { model: uri.model }),
  };
  if (label === undefined && serial === undefined && slotId === undefined) {
    throw invalid(
      'one of token_label, token_serial or slot_id (or the uri token, serial or slot-id) is required',
    );
  }

  const pinSources = [
    config.pin === undefined ? undefined : 'pin',
    config.pinFile === undefined ? undefined : 'pin_file',
    config.pinEnv === undefined ? undefined : 'pin_env',
    uri?.pinValue === undefined ? undefined : "the uri's pin-value",
    uri?.pinSource === undefined ? undefined : "the uri's pin-source",
  ].filter((s): s is string => s !== undefined);
  if (pinSources.length === 0) {
    throw invalid('a PIN is required: set pin_file, pin_env or pin (or the uri pin-source)');
  }
  if (pinSources.length > 1) {
    throw invalid(`give exactly one PIN source (found ${pinSources.join(' and ')})`);
  }
  let pin: string;
  if (config.pin !== undefined) {
    if (typeof config.pin !== 'string' || config.pin === '') throw invalid('pin must not be empty');
    pin = config.pin;
  } else if (config.pinFile !== undefined) {
    pin = await readPinFile(optString(config.pinFile, 'pin_file')!, 'pin_file');
  } else if (config.pinEnv !== undefined) {
    const name = optString(config.pinEnv, 'pin_env')!;
    const v = env[name];
    if (v === undefined || v === '') {
      throw new SpireEdgeError(
        'ERR_HSM_PIN_SOURCE',
        `pkcs11 pin_env: environment variable ${name} is not set or empty`,
        { details: { env: name } },
      );
    }
    pin = v;
  } else if (uri?.pinValue !== undefined) {
    if (uri.pinValue === '') throw invalid("the uri's pin-value must not be empty");
    pin = uri.pinValue;
  } else {
    const src = uri!.pinSource!;
    let path: string;
    if (src.startsWith('file:')) {
      try {
        path = fileURLToPath(src);
      } catch {
        throw invalid("the uri's pin-source is not a usable file: URI");
      }
    } else if (src.startsWith('/')) {
      path = src;
    } else {
      throw invalid(
        "the uri's pin-source must be an absolute path or a file: URI (programs are not run)",
      );
    }
    pin = await readPinFile(path, 'uri pin-source');
  }

  const size = config.sessionPoolSize;
  if (size !== undefined && (!Number.isSafeInteger(size) || size < 1 || size > 64)) {
    throw invalid('session_pool_size must be a whole number from 1 to 64');
  }
  return {
    modulePath,
    token,
    pin,
    sessionPoolSize: size,
    ...(uri?.object === undefined ? {} : { objectLabel: uri.object }),
    ...(uri?.id === undefined ? {} : { objectId: uri.id }),
  };
}

const TOKEN_KEYS = [
  'module_path',
  'token_label',
  'token_serial',
  'slot_id',
  'pin',
  'pin_file',
  'pin_env',
  'uri',
  'session_pool_size',
] as const;

function fromPluginData(
  data: Readonly<Record<string, unknown>>,
  extraKeys: readonly string[],
  plugin: string,
): Pkcs11TokenConfig {
  if (data === null || typeof data !== 'object')
    throw invalid(`${plugin} plugin_data must be a block`);
  const allowed = new Set<string>([...TOKEN_KEYS, ...extraKeys]);
  for (const k of Object.keys(data)) {
    if (!allowed.has(k)) {
      throw invalid(
        `${plugin} plugin_data has unknown key ${k} (known: ${[...allowed].join(', ')})`,
      );
    }
  }
  const str = (k: string): string | undefined => optString(data[k], k);
  const int = (k: string): number | undefined => {
    const v = data[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw invalid(`${k} must be a non-negative whole number`);
    }
    return v;
  };
  const out: Record<string, unknown> = {
    modulePath: str('module_path'),
    tokenLabel: str('token_label'),
    tokenSerial: str('token_serial'),
    slotId: int('slot_id'),
    pin: str('pin'),
    pinFile: str('pin_file'),
    pinEnv: str('pin_env'),
    uri: str('uri'),
    sessionPoolSize: int('session_pool_size'),
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as Pkcs11TokenConfig;
}

/** The settings of `KeyManager "pkcs11"` beyond the token's. */
export interface Pkcs11KeyManagerSettings extends Pkcs11TokenConfig {
  /** `key_label_prefix`: prepended to the key id to form CKA_LABEL. Default `spire-edge-`. */
  readonly keyLabelPrefix?: string;
  /** `key_type`: when set, the only key type this manager generates. */
  readonly keyType?: KeyType;
  /** `signing_mode`: `auto` (default), `worker`, `async` or `sync` (signing-mode.ts). */
  readonly signingMode?: Pkcs11SigningMode;
  /** `key_id_length`: bytes of the derived CKA_ID, 1–32. Default 16 (2 for YubiHSM 2). */
  readonly keyIdLength?: number;
}

/**
 * Reads `KeyManager "pkcs11" { plugin_data { … } }` (snake_case keys, as decoded from the
 * configuration file): `module_path`, `token_label` | `token_serial` | `slot_id`, `pin` |
 * `pin_file` | `pin_env`, `uri`, `key_label_prefix`, `key_type`, `signing_mode`, `key_id_length`, `session_pool_size`.
 *
 * @throws SpireEdgeError `ERR_HSM_CONFIG_INVALID` naming an unknown or malformed key.
 */
export function pkcs11KeyManagerSettingsFromPluginData(
  data: Readonly<Record<string, unknown>>,
): Pkcs11KeyManagerSettings {
  const base = fromPluginData(
    data,
    ['key_label_prefix', 'key_type', 'signing_mode', 'key_id_length'],
    'KeyManager "pkcs11"',
  );
  const mode = data['signing_mode'];
  if (
    mode !== undefined &&
    (typeof mode !== 'string' || !(PKCS11_SIGNING_MODES as readonly string[]).includes(mode))
  ) {
    throw invalid(`signing_mode must be one of ${PKCS11_SIGNING_MODES.join(', ')}`);
  }
  const prefix = data['key_label_prefix'];
  if (prefix !== undefined && typeof prefix !== 'string') {
    throw invalid('key_label_prefix must be a string');
  }
  const idLength = data['key_id_length'];
  if (
    idLength !== undefined &&
    (typeof idLength !== 'number' ||
      !Number.isSafeInteger(idLength) ||
      idLength < 1 ||
      idLength > 32)
  ) {
    throw invalid('key_id_length must be a whole number from 1 to 32');
  }
  const kt = data['key_type'];
  if (
    kt !== undefined &&
    (typeof kt !== 'string' || !(KEY_TYPES as readonly string[]).includes(kt))
  ) {
    throw invalid(`key_type must be one of ${KEY_TYPES.join(', ')}`);
  }
  return {
    ...base,
    ...(prefix === undefined ? {} : { keyLabelPrefix: prefix }),
    ...(kt === undefined ? {} : { keyType: kt as KeyType }),
    ...(mode === undefined ? {} : { signingMode: mode as Pkcs11SigningMode }),
    ...(idLength === undefined ? {} : { keyIdLength: idLength }),
  };
}

/** The settings of `UpstreamAuthority "pkcs11"` beyond the token's. */
export interface Pkcs11UpstreamAuthoritySettings extends Pkcs11TokenConfig {
  /** `key_label`: CKA_LABEL of the root CA's private key (or the uri's `object`). */
  readonly keyLabel?: string;
  /** `key_id`: CKA_ID of the root CA's private key, hex (or the uri's `id`). */
  readonly keyId?: string;
  /** `certificate_label`: CKA_LABEL of the root certificate object. Default: the key label. */
  readonly certificateLabel?: string;
}

/**
 * Reads `UpstreamAuthority "pkcs11" { plugin_data { … } }`: the token keys as for the
 * KeyManager plus `key_label`, `key_id` (hex) and `certificate_label`.
 *
 * @throws SpireEdgeError `ERR_HSM_CONFIG_INVALID` naming an unknown or malformed key.
 */
export function pkcs11UpstreamAuthoritySettingsFromPluginData(
  data: Readonly<Record<string, unknown>>,
): Pkcs11UpstreamAuthoritySettings {
  const base = fromPluginData(
    data,
    ['key_label', 'key_id', 'certificate_label'],
    'UpstreamAuthority "pkcs11"',
  );
  const keyLabel = optString(data['key_label'], 'key_label');
  const keyId = optString(data['key_id'], 'key_id');
  if (keyId !== undefined && !/^(?:[0-9a-fA-F]{2})+$/.test(keyId)) {
    throw invalid('key_id must be an even number of hexadecimal digits');
  }
  const certificateLabel = optString(data['certificate_label'], 'certificate_label');
  return {
    ...base,
    ...(keyLabel === undefined ? {} : { keyLabel }),
    ...(keyId === undefined ? {} : { keyId }),
    ...(certificateLabel === undefined ? {} : { certificateLabel }),
  };
}
