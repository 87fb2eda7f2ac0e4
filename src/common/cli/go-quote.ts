/**
 * Go's `%q` verb (`strconv.Quote`) for strings, which SPIRE's CLIs use in messages such as
 * `Failed to create the following entry (code: AlreadyExists, msg: "similar entry already
 * exists"):` and in flag usage defaults (`(default "superset")`).
 */

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

const NAMED_ESCAPES: Readonly<Record<string, string>> = {
  '\x07': '\\a',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\v': '\\v',
  '"': '\\"',
  '\\': '\\\\',
};

/**
 * Quotes `s` as Go's `strconv.Quote`: double quotes, `\"` and `\\`, the named escapes
 * (`\a \b \f \n \r \t \v`), `\xHH` for other ASCII control characters, `\uHHHH` / `\UHHHHHHHH`
 * for other non-printable code points; printable Unicode is kept as is. A lone UTF-16
 * surrogate (which has no UTF-8 form) is written as `\ufffd`, the replacement Go would see.
 */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const named = NAMED_ESCAPES[ch];
    if (named !== undefined) {
      out += named;
      continue;
    }
    const cp = ch.codePointAt(0)!;
    if (cp >= 0xd800 && cp <= 0xdfff) {
      out += '\\ufffd';
    } else if (PRINTABLE.test(ch)) {
      out += ch;
    } else if (cp < 0x80) {
      out += `\\x${cp.toString(16).padStart(2, '0')}`;
    } else if (cp < 0x10000) {
      out += `\\u${cp.toString(16).padStart(4, '0')}`;
    } else {
      out += `\\U${cp.toString(16).padStart(8, '0')}`;
    }
  }
  return `${out}"`;
}
