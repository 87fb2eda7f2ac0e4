/**
 * The batch files of `entry create -data`, `entry update -data` and `entry delete -file`,
 * read as SPIRE reads them: Go's `encoding/json` into SPIRE's legacy `RegistrationEntries`
 * structure (keys are the proto field names, `entryExpiry` excepted; matched exactly first,
 * then case-insensitively; unknown keys ignored; `null` leaves a field unset) and, for deletes,
 * into `BatchDeleteEntryRequest` (`{"ids": [...]}`).
 *
 * Example: `{"entries": [{"spiffe_id": "spiffe://example.org/web", "parent_id":
 * "spiffe://example.org/agent", "selectors": [{"type": "unix", "value": "uid:1000"}],
 * "x509_svid_ttl": 3600}]}`.
 *
 * The file is untrusted input: every value is type-checked (Go's `json: cannot unmarshal …`
 * texts) and SPIFFE IDs and trust domains are validated (SPIRE's `RegistrationEntryToProto`
 * texts). Errors: `ERR_CLI_DATA_INVALID`, `ERR_CLI_JSON_INVALID`.
 */
import { create } from '@bufbuild/protobuf';
import { goJsonTypeName, type JsonNode, parseJsonText } from '../../../common/cli/json-text.js';
import { SpireEdgeError } from '../../../common/errors.js';
import { types } from '../../../protocol/index.js';
import { idStringToProto, trustDomainName } from '../util.js';

type Decoded = string | boolean | bigint | undefined | Decoded[] | DecodedStruct | null;
interface DecodedStruct {
  [field: string]: Decoded;
}

type FieldType =
  | { readonly kind: 'string' | 'bool' }
  | { readonly kind: 'int'; readonly bits: 32 | 64; readonly goName: string }
  | { readonly kind: 'list'; readonly elem: FieldType; readonly goName: string }
  | { readonly kind: 'struct'; readonly schema: StructSchema };

interface StructSchema {
  /** Go's type name in errors, e.g. `common.RegistrationEntry`. */
  readonly goName: string;
  /** JSON name → type, in declaration order. */
  readonly fields: ReadonlyArray<readonly [string, FieldType]>;
}

const STRING: FieldType = { kind: 'string' };
const BOOL: FieldType = { kind: 'bool' };
const INT32: FieldType = { kind: 'int', bits: 32, goName: 'int32' };
const INT64: FieldType = { kind: 'int', bits: 64, goName: 'int64' };
const STRINGS: FieldType = { kind: 'list', elem: STRING, goName: '[]string' };

const SELECTOR: StructSchema = {
  goName: 'common.Selector',
  fields: [
    ['type', STRING],
    ['value', STRING],
  ],
};

const ADDITIONAL_ATTRIBUTES: StructSchema = {
  goName: 'common.RegistrationEntry_AdditionalAttributes',
  fields: [
    ['disable_x509_svid_prefetch', BOOL],
    ['jwt_svid_include_jti', BOOL],
  ],
};

const REGISTRATION_ENTRY: StructSchema = {
  goName: 'common.RegistrationEntry',
  fields: [
    [
      'selectors',
      {
        kind: 'list',
        elem: { kind: 'struct', schema: SELECTOR },
        goName: '[]*common.Selector',
      },
    ],
    ['parent_id', STRING],
    ['spiffe_id', STRING],
    ['x509_svid_ttl', INT32],
    ['federates_with', STRINGS],
    ['entry_id', STRING],
    ['admin', BOOL],
    ['downstream', BOOL],
    ['entryExpiry', INT64],
    ['dns_names', STRINGS],
    ['revision_number', INT64],
    ['store_svid', BOOL],
    ['jwt_svid_ttl', INT32],
    ['hint', STRING],
    ['created_at', INT64],
    ['additional_attributes', { kind: 'struct', schema: ADDITIONAL_ATTRIBUTES }],
  ],
};

const REGISTRATION_ENTRIES: StructSchema = {
  goName: 'common.RegistrationEntries',
  fields: [
    [
      'entries',
      {
        kind: 'list',
        elem: { kind: 'struct', schema: REGISTRATION_ENTRY },
        goName: '[]*common.RegistrationEntry',
      },
    ],
  ],
};

const BATCH_DELETE: StructSchema = {
  goName: 'entryv1.BatchDeleteEntryRequest',
  fields: [['ids', STRINGS]],
};

function dataError(message: string): SpireEdgeError {
  return new SpireEdgeError('ERR_CLI_DATA_INVALID', message);
}

function shortName(goName: string): string {
  return goName.slice(goName.lastIndexOf('.') + 1);
}

function typeName(t: FieldType): string {
  switch (t.kind) {
    case 'string':
    case 'bool':
      return t.kind;
    case 'int':
    case 'list':
      return t.goName;
    case 'struct':
      return t.schema.goName;
  }
}

interface Where {
  /** The struct whose field is being decoded ('' at the top level). */
  readonly struct: string;
  readonly path: readonly string[];
}

function typeError(value: string, t: FieldType, where: Where): SpireEdgeError {
  if (where.struct === '') {
    return dataError(`json: cannot unmarshal ${value} into Go value of type ${typeName(t)}`);
  }
  return dataError(
    `json: cannot unmarshal ${value} into Go struct field ${where.struct}.${where.path.join('.')} of type ${typeName(t)}`,
  );
}

function decodeInt(text: string, bits: 32 | 64): bigint | undefined {
  if (!/^-?(0|[1-9][0-9]*)$/.test(text)) return undefined;
  const v = BigInt(text);
  const limit = 1n << BigInt(bits - 1);
  return v < -limit || v >= limit ? undefined : v;
}

function decode(node: JsonNode, t: FieldType, where: Where): Decoded {
  if (node.kind === 'null') return null;
  switch (t.kind) {
    case 'string':
      if (node.kind !== 'string') throw typeError(goJsonTypeName(node), t, where);
      return node.value;
    case 'bool':
      if (node.kind !== 'bool') throw typeError(goJsonTypeName(node), t, where);
      return node.value;
    case 'int': {
      if (node.kind !== 'number') throw typeError(goJsonTypeName(node), t, where);
      const v = decodeInt(node.text, t.bits);
      if (v === undefined) throw typeError(`number ${node.text}`, t, where);
      return v;
    }
    case 'list':
      if (node.kind !== 'array') throw typeError(goJsonTypeName(node), t, where);
      return node.items.map((item) => decode(item, t.elem, where));
    case 'struct': {
      if (node.kind !== 'object') throw typeError(goJsonTypeName(node), t, where);
      const out: DecodedStruct = {};
      for (const [key, value] of node.members) {
        const field =
          t.schema.fields.find(([name]) => name === key) ??
          t.schema.fields.find(([name]) => name.toLowerCase() === key.toLowerCase());
        if (field === undefined) continue;
        const [name, fieldType] = field;
        out[name] = decode(value, fieldType, {
          struct: shortName(t.schema.goName),
          path: [...where.path, name],
        });
      }
      return out;
    }
  }
}

function decodeDocument(text: string, schema: StructSchema): DecodedStruct {
  const root = decode(
    parseJsonText(text),
    { kind: 'struct', schema },
    {
      struct: '',
      path: [],
    },
  );
  return root === null ? {} : (root as DecodedStruct);
}

function str(v: Decoded): string {
  return typeof v === 'string' ? v : '';
}

function int(v: Decoded): bigint {
  return typeof v === 'bigint' ? v : 0n;
}

function strings(v: Decoded): string[] {
  return Array.isArray(v) ? v.map(str) : [];
}

function wrap(prefix: string, f: () => types.SPIFFEID): types.SPIFFEID {
  try {
    return f();
  } catch (err) {
    throw dataError(`${prefix}: ${(err as Error).message}`);
  }
}

/** SPIRE's `RegistrationEntryToProto` for one decoded entry. */
function toEntry(raw: Decoded): types.Entry {
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    throw dataError('missing registration entry');
  }
  const r = raw as DecodedStruct;
  const spiffeId = wrap('invalid SPIFFE ID', () => idStringToProto(str(r['spiffe_id'])));
  const parentId = wrap('invalid parent ID', () => idStringToProto(str(r['parent_id'])));
  const federatesWith = strings(r['federates_with'] ?? null).map((td) => {
    try {
      return trustDomainName(td);
    } catch (err) {
      throw dataError(`invalid federated trust domain: ${(err as Error).message}`);
    }
  });
  const selectors = (Array.isArray(r['selectors']) ? r['selectors'] : []).map((s) => {
    if (s === null || typeof s !== 'object' || Array.isArray(s)) {
      throw dataError('missing selector');
    }
    const sel = s as DecodedStruct;
    return create(types.SelectorSchema, { type: str(sel['type']), value: str(sel['value']) });
  });
  const attrs = r['additional_attributes'];
  const entry = create(types.EntrySchema, {
    id: str(r['entry_id']),
    spiffeId,
    parentId,
    selectors,
    x509SvidTtl: Number(int(r['x509_svid_ttl'])),
    federatesWith,
    admin: r['admin'] === true,
    downstream: r['downstream'] === true,
    expiresAt: int(r['entryExpiry']),
    dnsNames: strings(r['dns_names'] ?? null),
    revisionNumber: int(r['revision_number']),
    storeSvid: r['store_svid'] === true,
    jwtSvidTtl: Number(int(r['jwt_svid_ttl'])),
    hint: str(r['hint']),
    createdAt: int(r['created_at']),
  });
  if (attrs !== null && attrs !== undefined && typeof attrs === 'object' && !Array.isArray(attrs)) {
    const a = attrs as DecodedStruct;
    entry.additionalAttributes = create(types.Entry_AdditionalAttributesSchema, {
      disableX509SvidPrefetch: a['disable_x509_svid_prefetch'] === true,
      jwtSvidIncludeJti: a['jwt_svid_include_jti'] === true,
    });
  }
  return entry;
}

/**
 * Parses a registration entries file (`{"entries": [...]}`) into API entries.
 *
 * @throws SpireEdgeError `ERR_CLI_JSON_INVALID` (syntax), `ERR_CLI_DATA_INVALID` (types, IDs).
 */
export function parseEntriesFile(text: string): types.Entry[] {
  const doc = decodeDocument(text, REGISTRATION_ENTRIES);
  const list = doc['entries'];
  return Array.isArray(list) ? list.map(toEntry) : [];
}

/**
 * Parses a batch delete file (`{"ids": ["id1", "id2"]}`) into entry IDs.
 *
 * @throws SpireEdgeError `ERR_CLI_JSON_INVALID` (syntax), `ERR_CLI_DATA_INVALID` (types).
 */
export function parseDeleteFile(text: string): string[] {
  return strings(decodeDocument(text, BATCH_DELETE)['ids'] ?? null);
}
