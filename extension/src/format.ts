/** Small pure formatting helpers of the panel (no DOM, no network). */
import { IFreshness, Level } from './types';

/** "42s", "5m", "3h", "2d": the age of the newest event, short enough for a badge. */
export function shortDuration(seconds: number): string {
  const units: Array<[number, string]> = [
    [86400, 'd'],
    [3600, 'h'],
    [60, 'm']
  ];
  for (const [size, unit] of units) {
    if (seconds >= size) {
      return `${Math.floor(seconds / size)}${unit}`;
    }
  }
  return `${Math.max(0, Math.round(seconds))}s`;
}

/** The freshness badge's text: the age against the SLA, or why there is none. */
export function freshnessText(freshness: IFreshness | null | undefined): string {
  if (!freshness || freshness.age_seconds === null) {
    return 'freshness unknown';
  }
  const age = shortDuration(freshness.age_seconds);
  return freshness.sla_seconds === null
    ? `${age} old`
    : `${age} old / SLA ${shortDuration(freshness.sla_seconds)}`;
}

/** A CSS class suffix for a level, "none" when there is no verdict. */
export function levelClass(level: Level | string | null | undefined): string {
  return level === 'ok' || level === 'warn' || level === 'alert' ? level : 'none';
}

/** A timestamp as the user's local date and time, or the raw text when it does not parse. */
export function when(iso: string | null | undefined): string {
  if (!iso) {
    return '';
  }
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** The kind of each line of a unified diff, for colouring. */
export function diffLineKind(line: string): 'add' | 'del' | 'hunk' | 'meta' | 'same' {
  if (line.startsWith('+++') || line.startsWith('---')) {
    return 'meta';
  }
  if (line.startsWith('@@')) {
    return 'hunk';
  }
  if (line.startsWith('+')) {
    return 'add';
  }
  if (line.startsWith('-')) {
    return 'del';
  }
  return 'same';
}
