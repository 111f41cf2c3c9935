import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  excludedBy,
  parseCronHpaSchedule,
  parseGoDurationMs,
  type CronHpaSchedule,
} from './cronhpa-schedule.ts';

function schedule(text: string, timeZone?: string): CronHpaSchedule {
  const parsed = parseCronHpaSchedule(text, timeZone);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.problem);
  return parsed.schedule;
}

const T0 = new Date('2026-12-07T00:00:00Z'); // a Monday
const iso = (date: Date | undefined): string | undefined => date?.toISOString();

test('six fields with seconds; ? means any day, not today as croner would read it', () => {
  assert.equal(iso(schedule('*/5 * * * * *').nextAfter(T0, T0)), '2026-12-07T00:00:05.000Z');
  // Saturday 08:00 in Shanghai, then Monday (Sunday is not in 1-6).
  const weekdays = schedule('0 0 8 ? * 1-6', 'Asia/Shanghai');
  assert.equal(iso(weekdays.nextAfter(T0, new Date('2026-12-12T00:00:00Z'))), '2026-12-14T00:00:00.000Z');
  assert.equal(iso(schedule('0 0 0 ? * *', 'UTC').nextAfter(T0, T0)), '2026-12-08T00:00:00.000Z');
});

test('latestIn finds the last run of a window, not the first', () => {
  const everyMinute = schedule('0 * * * * *');
  assert.equal(iso(everyMinute.latestIn(T0, new Date('2026-12-07T05:17:42Z'))), '2026-12-07T05:17:00.000Z');
  assert.equal(everyMinute.latestIn(T0, new Date('2026-12-07T00:00:59Z')), undefined);
});

test('names, @every with Go durations and one-shot @date in a time zone', () => {
  assert.equal(iso(schedule('@hourly').nextAfter(T0, T0)), '2026-12-07T01:00:00.000Z');
  assert.equal(parseGoDurationMs('1h30m'), 5_400_000);
  assert.equal(parseGoDurationMs('1.5s'), 1500);
  assert.equal(parseGoDurationMs('10'), undefined);
  const every = schedule('@every 90s');
  assert.equal(iso(every.latestIn(T0, new Date('2026-12-07T00:04:00Z'))), '2026-12-07T00:03:00.000Z');
  assert.equal(iso(every.nextAfter(T0, new Date('2026-12-07T00:03:00Z'))), '2026-12-07T00:04:30.000Z');
  const once = schedule('@date 2026-12-24 18:00:00', 'Europe/Berlin');
  assert.equal(iso(once.nextAfter(T0, T0)), '2026-12-24T17:00:00.000Z');
  assert.equal(once.nextAfter(T0, new Date('2026-12-25T00:00:00Z')), undefined);
});

test('schedules that cannot run say why', () => {
  const problem = (text: string): string => {
    const parsed = parseCronHpaSchedule(text);
    return parsed.ok ? '' : parsed.problem;
  };
  assert.match(problem('0 8 * * *'), /needs 6 fields/);
  assert.match(problem('0 0 25 * * *'), /not a valid schedule/);
  assert.match(problem('@every 500ms'), /shorter than the one second/);
  assert.match(problem('@date 2026-02-30 00:00:00'), /not a valid time/);
  assert.match(problem('@fortnightly'), /not a known schedule name/);
});

test('excludeDates compares days in the zone: different days differ', () => {
  const late = new Date('2026-11-15T20:00:00Z');
  assert.equal(excludedBy(['* * * 15 11 *'], late, 'UTC'), '* * * 15 11 *');
  assert.equal(excludedBy(['* * * 15 11 *'], late, 'Asia/Shanghai'), undefined, 'already the 16th there');
  assert.equal(excludedBy(['* * * 15 11 *'], new Date('2026-11-16T12:00:00Z'), 'UTC'), undefined);
  // A pattern firing at any time of the day excludes the whole day.
  assert.equal(excludedBy(['0 0 12 15 11 *'], new Date('2026-11-15T01:00:00Z'), 'UTC'), '0 0 12 15 11 *');
});
