/**
 * Time stamps as SPIRE's Go CLIs print them: `time.Time.String()`
 * (`2006-01-02 15:04:05 -0700 MST`) and RFC 3339 (`2006-01-02T15:04:05Z`).
 */

/** Civil date of a day count since 1970-01-01 (proleptic Gregorian; H. Hinnant's algorithm). */
function civilFromDays(days: number): { y: number; m: number; d: number } {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return { y: yoe + era * 400 + (m <= 2 ? 1 : 0), m, d };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function formatYear(y: number): string {
  return y < 0 ? `-${pad(-y, 4)}` : pad(y, 4);
}

/** `YYYY-MM-DD hh:mm:ss` of `seconds` since the epoch, shifted by `offsetSeconds`. */
function civil(seconds: number, offsetSeconds: number): { date: string; time: string } {
  const t = seconds + offsetSeconds;
  const days = Math.floor(t / 86400);
  const rem = t - days * 86400;
  const { y, m, d } = civilFromDays(days);
  return {
    date: `${formatYear(y)}-${pad(m, 2)}-${pad(d, 2)}`,
    time: `${pad(Math.floor(rem / 3600), 2)}:${pad(Math.floor((rem % 3600) / 60), 2)}:${pad(rem % 60, 2)}`,
  };
}

function formatOffset(offsetSeconds: number, colon: boolean): string {
  const sign = offsetSeconds < 0 ? '-' : '+';
  const abs = Math.abs(offsetSeconds);
  return `${sign}${pad(Math.floor(abs / 3600), 2)}${colon ? ':' : ''}${pad(Math.floor((abs % 3600) / 60), 2)}`;
}

function toSeconds(unixSeconds: number | bigint): number {
  const s = Number(unixSeconds);
  if (!Number.isSafeInteger(s)) throw new TypeError('time stamp must be a safe integer');
  return s;
}

/** A time zone: its UTC offset and abbreviation at a given instant. */
export interface GoZone {
  readonly offsetSeconds: number;
  readonly abbreviation: string;
}

/** UTC, as Go's `time.UTC`. */
export const UTC_ZONE: GoZone = Object.freeze({ offsetSeconds: 0, abbreviation: 'UTC' });

/**
 * The process's local zone at `unixSeconds` (from `TZ` or /etc/localtime, as Go reads it).
 * The abbreviation comes from the platform's time zone names; when it has none, Go's tzdata
 * convention of a numeric name (`+03`, `+0530`) is used.
 */
export function localZone(unixSeconds: number | bigint): GoZone {
  const s = toSeconds(unixSeconds);
  const clamped = Math.max(-8.64e12, Math.min(8.64e12, s));
  const date = new Date(clamped * 1000);
  const offsetSeconds = -date.getTimezoneOffset() * 60;
  let abbreviation = '';
  try {
    const part = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' })
      .formatToParts(date)
      .find((p) => p.type === 'timeZoneName');
    if (part !== undefined && /^[A-Z]{2,5}$/.test(part.value)) abbreviation = part.value;
  } catch {
    // no Intl time zone data: fall back to the numeric name
  }
  if (abbreviation === '') {
    if (offsetSeconds === 0) abbreviation = 'UTC';
    else {
      const full = formatOffset(offsetSeconds, false);
      abbreviation = full.endsWith('00') ? full.slice(0, 3) : full;
    }
  }
  return { offsetSeconds, abbreviation };
}

/**
 * Go's `time.Unix(s, 0).String()` in `zone` (default UTC):
 * `2024-05-01 12:00:00 +0000 UTC`.
 */
export function formatGoTime(unixSeconds: number | bigint, zone: GoZone = UTC_ZONE): string {
  const s = toSeconds(unixSeconds);
  const { date, time } = civil(s, zone.offsetSeconds);
  return `${date} ${time} ${formatOffset(zone.offsetSeconds, false)} ${zone.abbreviation}`;
}

/** RFC 3339 in UTC, as Go's `t.UTC().Format(time.RFC3339)`: `2024-05-01T12:00:00Z`. */
export function formatRfc3339Utc(unixSeconds: number | bigint): string {
  const { date, time } = civil(toSeconds(unixSeconds), 0);
  return `${date}T${time}Z`;
}
