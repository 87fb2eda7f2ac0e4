/**
 * Environment-variable expansion for `-expandEnv`, exactly as SPIRE does it: Go's `os.Expand`
 * over the whole configuration text *before* it is parsed (comments included), with SPIRE's
 * mapping (`pkg/common/config.ExpandEnv`):
 *
 * - `$NAME` (ASCII letters, digits, `_`) and `${NAME}` (anything up to the first `}`) are replaced
 *   by the variable's value, or by nothing when it is unset;
 * - `$$` (and `${$}`) is a literal `$`; the other one-character shell specials `$*`, `$#`, `$@`,
 *   `$!`, `$?`, `$-`, `$0`–`$9` are looked up as variable names (so they usually vanish);
 * - a `$` followed by anything else, or at the very end, is kept;
 * - `${}` and an unclosed `${` are dropped (Go's "bad syntax" rule).
 *
 * The result is not re-expanded. Pure: the caller passes the environment in.
 */

/** An environment: variable name → value (`undefined` means unset). */
export type Environment = Readonly<Record<string, string | undefined>>;

function isShellSpecial(c: number): boolean {
  // * # $ @ ! ? - 0-9
  return (
    c === 0x2a ||
    c === 0x23 ||
    c === 0x24 ||
    c === 0x40 ||
    c === 0x21 ||
    c === 0x3f ||
    c === 0x2d ||
    (c >= 0x30 && c <= 0x39)
  );
}

function isAlphaNum(c: number): boolean {
  return (
    c === 0x5f || (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a)
  );
}

/** Go's `getShellName`: the name after `$` at `s[at]` and how many characters it spans. */
function shellName(s: string, at: number): { name: string; width: number } {
  const c = s.charCodeAt(at);
  if (c === 0x7b) {
    if (
      at + 2 < s.length &&
      isShellSpecial(s.charCodeAt(at + 1)) &&
      s.charCodeAt(at + 2) === 0x7d
    ) {
      return { name: s[at + 1]!, width: 3 };
    }
    const close = s.indexOf('}', at + 1);
    if (close === -1) return { name: '', width: 1 }; // bad syntax: eat "${"
    if (close === at + 1) return { name: '', width: 2 }; // bad syntax: eat "${}"
    return { name: s.slice(at + 1, close), width: close - at + 1 };
  }
  if (isShellSpecial(c)) return { name: s[at]!, width: 1 };
  let end = at;
  while (end < s.length && isAlphaNum(s.charCodeAt(end))) end++;
  return { name: s.slice(at, end), width: end - at };
}

/**
 * Expands `$VAR` and `${VAR}` in `text` from `env`, as SPIRE's `-expandEnv` does (see the module
 * docs for the exact rules). Unset variables expand to the empty string, as in SPIRE.
 */
export function expandEnv(text: string, env: Environment): string {
  if (typeof text !== 'string') throw new TypeError('text must be a string');
  let out = '';
  let last = 0;
  for (let j = 0; j < text.length; j++) {
    if (text.charCodeAt(j) !== 0x24 || j + 1 >= text.length) continue;
    out += text.slice(last, j);
    const { name, width } = shellName(text, j + 1);
    if (name === '' && width > 0) {
      // bad syntax: drop the characters
    } else if (name === '') {
      out += '$';
    } else if (name === '$') {
      out += '$';
    } else {
      out += Object.hasOwn(env, name) ? (env[name] ?? '') : '';
    }
    j += width;
    last = j + 1;
  }
  return last === 0 ? text : out + text.slice(last);
}
