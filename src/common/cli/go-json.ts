/**
 * JSON text byte-compatible with what SPIRE's Go CLIs print (`encoding/json`): compact, object
 * keys of maps sorted byte-wise, `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c` …, and
 * protobuf messages in the form `protojson` gives with `UseProtoNames` and `EmitUnpopulated`
 * (field names as in the .proto, 64-bit integers as strings, bytes as base64, enums by name).
 */
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { toJson } from '@bufbuild/protobuf';

/** A JSON value. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | readonly JsonValue[]
  | { readonly [key: string]: JsonValue };

function escapeString(s: string): string {
  return (
    JSON.stringify(s)
      .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
      // A lone surrogate has no UTF-8 form: Go would have seen (and written) U+FFFD.
      .replace(/\\ud[89a-f][0-9a-f]{2}/g, '\\ufffd')
  );
}

/**
 * Go's `json.Marshal` of a value decoded into `any` (maps sort their keys) when `sortKeys`,
 * or of a struct (keys in the given order) when not.
 */
export function goJsonMarshal(value: JsonValue, sortKeys = true): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return escapeString(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError('goJsonMarshal: number is not finite');
    return JSON.stringify(value);
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) {
    return `[${(value as readonly JsonValue[]).map((v) => goJsonMarshal(v, sortKeys)).join(',')}]`;
  }
  const obj = value as { readonly [key: string]: JsonValue };
  let keys = Object.keys(obj);
  if (sortKeys) keys = keys.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return `{${keys.map((k) => `${escapeString(k)}:${goJsonMarshal(obj[k]!, sortKeys)}`).join(',')}}`;
}

/** SPIRE's `removeNulls`: drops null object members and null array elements, recursively. */
export function removeNulls(value: JsonValue): JsonValue {
  if (Array.isArray(value)) {
    return (value as readonly JsonValue[]).filter((v) => v !== null).map(removeNulls);
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(value as Record<string, JsonValue>)) {
      if (v !== null) out[k] = removeNulls(v);
    }
    return out;
  }
  return value;
}

/**
 * A protobuf message as the JSON SPIRE's CLIs print for `-output json`: `protojson` with proto
 * field names and unpopulated fields emitted, nulls removed, keys sorted, compact. No trailing
 * newline.
 */
export function protoToGoJson<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): string {
  const json = toJson(schema, message, {
    useProtoFieldName: true,
    alwaysEmitImplicit: true,
  }) as JsonValue;
  return goJsonMarshal(removeNulls(json));
}

/**
 * Go's `json.Marshal` of a struct-ordered value followed by `json.Indent(…, "", indent)`: keys
 * in the given order, HTML-sensitive characters escaped, one member per line.
 */
export function goJsonIndent(value: JsonValue, indent: string): string {
  // JSON.stringify's layout equals json.Indent's; only Go's extra escapes differ, and those
  // characters can occur only inside strings.
  return JSON.stringify(value, null, indent)
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
    .replace(/\\ud[89a-f][0-9a-f]{2}/g, '\\ufffd');
}
