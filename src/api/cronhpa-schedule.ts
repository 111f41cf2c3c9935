import { Cron } from 'croner';

/**
 * A CronHPA job's schedule, as kubernetes-cronhpa-controller reads it: six fields with mandatory
 * seconds (`sec min hour dom month dow`, `?` meaning "any" in dom/dow), a name such as `@daily`,
 * `@every <duration>` (Go's duration syntax, at least one second) or `@date YYYY-MM-DD HH:MM:SS`
 * (one run). Runs are counted from `since`, the job's submission or its last run: `@every` runs
 * at `since + k × interval`, cron patterns at their wall-clock times in the object's time zone.
 */
export interface CronHpaSchedule {
  /** The latest run in (`since`, `until`], or undefined when none falls there. */
  latestIn(since: Date, until: Date): Date | undefined;
  /** The first run after `after` (and after `since`), or undefined when there is none (a past `@date`). */
  nextAfter(since: Date, after: Date): Date | undefined;
}

export type ScheduleParse = { ok: true; schedule: CronHpaSchedule } | { ok: false; problem: string };

/** Names and their six-field patterns (robfig/cron's, which the original uses). */
const NAMED: Readonly<Record<string, string>> = {
  '@yearly': '0 0 0 1 1 *',
  '@annually': '0 0 0 1 1 *',
  '@monthly': '0 0 0 1 * *',
  '@weekly': '0 0 0 * * 0',
  '@daily': '0 0 0 * * *',
  '@midnight': '0 0 0 * * *',
  '@hourly': '0 0 * * * *',
};

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a schedule; `timeZone` is an IANA name (undefined: the process's zone, as the original).
 * Never throws: a schedule that cannot run gives the reason.
 */
export function parseCronHpaSchedule(text: string, timeZone?: string): ScheduleParse {
  const trimmed = text.trim();
  if (trimmed.startsWith('@every')) return everySchedule(trimmed.slice('@every'.length).trim());
  if (trimmed.startsWith('@date')) return dateSchedule(trimmed.slice('@date'.length).trim(), timeZone);
  const pattern = NAMED[trimmed] ?? trimmed;
  if (pattern.startsWith('@')) return { ok: false, problem: `"${text}" is not a known schedule name` };
  const fields = pattern.split(/\s+/);
  if (fields.length !== 6) {
    return {
      ok: false,
      problem: `"${text}" needs 6 fields (second minute hour day-of-month month day-of-week), got ${fields.length}`,
    };
  }
  // In Quartz and robfig/cron `?` means "any"; croner would put today's date in its place.
  const normalised = fields.map((field, index) =>
    (index === 3 || index === 5) && field === '?' ? '*' : field,
  );
  const cron = cronOf(normalised.join(' '), timeZone);
  if (typeof cron === 'string') return { ok: false, problem: `"${text}" is not a valid schedule: ${cron}` };
  return { ok: true, schedule: cronSchedule(cron) };
}

/** A croner job that never runs, or why the pattern or zone is refused. */
function cronOf(pattern: string, timeZone: string | undefined): Cron | string {
  try {
    return new Cron(pattern, { paused: true, ...(timeZone === undefined ? {} : { timezone: timeZone }) });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function cronSchedule(cron: Cron): CronHpaSchedule {
  return {
    latestIn(since, until) {
      const [latest] = cron.previousRuns(1, new Date(until.getTime() + 1));
      return latest !== undefined && latest.getTime() > since.getTime() ? latest : undefined;
    },
    nextAfter(since, after) {
      return cron.nextRun(new Date(Math.max(since.getTime(), after.getTime()))) ?? undefined;
    },
  };
}

function everySchedule(text: string): ScheduleParse {
  const intervalMs = parseGoDurationMs(text);
  if (intervalMs === undefined)
    return { ok: false, problem: `"@every ${text}" needs a duration such as 30s, 5m or 1h30m` };
  if (intervalMs < 1000)
    return { ok: false, problem: `"@every ${text}" is shorter than the one second a schedule can resolve` };
  return {
    ok: true,
    schedule: {
      latestIn(since, until) {
        const runs = Math.floor((until.getTime() - since.getTime()) / intervalMs);
        return runs >= 1 ? new Date(since.getTime() + runs * intervalMs) : undefined;
      },
      nextAfter(since, after) {
        const runs = Math.max(0, Math.floor((after.getTime() - since.getTime()) / intervalMs)) + 1;
        return new Date(since.getTime() + runs * intervalMs);
      },
    },
  };
}

/** Go's `time.ParseDuration` units (`1h30m`, `1.5h`, `500ms`); undefined when it is not one. */
export function parseGoDurationMs(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let totalMs = 0;
  for (const match of text.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) {
    totalMs += Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? ''] ?? 0);
  }
  return totalMs;
}

function dateSchedule(text: string, timeZone: string | undefined): ScheduleParse {
  const match = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text);
  if (match === null) return { ok: false, problem: `"@date ${text}" needs a time as YYYY-MM-DD HH:MM:SS` };
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // The wall-clock time in the zone, resolved by croner: the first time the pattern of that moment
  // fires after a point 15 hours before it read as UTC (no zone is further from UTC than 14 hours).
  const cron = cronOf(`${second} ${minute} ${hour} ${day} ${month} *`, timeZone);
  if (typeof cron === 'string') return { ok: false, problem: `"@date ${text}" is not a valid time: ${cron}` };
  const asUtcMs = Date.UTC(year, month - 1, day, hour, minute, second);
  const at = cron.nextRun(new Date(asUtcMs - 15 * 3_600_000));
  if (at === null || Math.abs(at.getTime() - asUtcMs) > 15 * 3_600_000)
    return { ok: false, problem: `"@date ${text}" is not a valid time` };
  return {
    ok: true,
    schedule: {
      latestIn: (since, until) =>
        at.getTime() > since.getTime() && at.getTime() <= until.getTime() ? at : undefined,
      nextAfter: (since, after) =>
        at.getTime() > Math.max(since.getTime(), after.getTime()) ? at : undefined,
    },
  };
}

/**
 * Whether the day `at` falls on (in the zone) is one of `excludeDates` — six-field patterns at
 * day granularity such as `* * * 15 11 *`: a day is excluded when its pattern fires at any time
 * of it. The original compared dates formatted with a layout that is not a date; this compares
 * the days themselves. Returns the matching pattern.
 */
export function excludedBy(
  excludeDates: readonly string[],
  at: Date,
  timeZone: string | undefined,
): string | undefined {
  const midnight = cronOf('0 0 0 * * *', timeZone);
  if (typeof midnight === 'string') return undefined;
  const [dayStart] = midnight.previousRuns(1, new Date(at.getTime() + 1));
  const nextDayStart = midnight.nextRun(at);
  if (dayStart === undefined || nextDayStart === null) return undefined;
  return excludeDates.find((pattern) => {
    const parsed = parseCronHpaSchedule(pattern, timeZone);
    if (!parsed.ok) return false;
    const first = parsed.schedule.nextAfter(new Date(0), new Date(dayStart.getTime() - 1));
    return first !== undefined && first.getTime() < nextDayStart.getTime();
  });
}

/** Why a time zone name cannot be used, or undefined when it can. */
export function timeZoneProblem(timeZone: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return undefined;
  } catch {
    return `"${timeZone}" is not an IANA time zone such as Europe/Berlin or Asia/Shanghai`;
  }
}
