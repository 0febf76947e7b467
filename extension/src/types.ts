/**
 * The shapes the server extension answers with (see the REST contract in the README's
 * "JupyterLab panel" section). Only what the panel reads is typed; the rest passes through.
 */

export type Level = 'ok' | 'warn' | 'alert';

export interface IFreshness {
  sla_seconds: number | null;
  newest_event_time: string | null;
  age_seconds: number | null;
  status: Level | null;
}

export interface IFamilySummary {
  name: string;
  owner: string;
  description: string;
  status: string;
  latest_version: number;
  production_version: number | null;
  features: string[];
  tags: string[];
  freshness: IFreshness;
  report_status: Level | null;
}

export interface IDeprecation {
  reason: string;
  replacement: string | null;
  sunset: string | null;
}

export interface IVersion {
  version: number;
  hash: string;
  status: string;
  aliases: string[];
  created_at: string;
  deprecation: IDeprecation | null;
  language: 'sql' | 'python';
  transformation: string;
  definition: Record<string, unknown>;
}

export interface IChange {
  from: number;
  to: number;
  diff: string;
}

export interface IRun {
  run_id: string;
  name: string;
  experiment: string;
  [key: string]: unknown;
}

export interface ILineage {
  sources: Array<Record<string, unknown> | string>;
  runs: IRun[];
}

export interface IReview {
  reviewer: string;
  at: string;
  comment: string;
}

/** A monitoring report record (the store's `ReportRecord.to_dict()`). */
export interface IReport {
  id: string;
  kind: string;
  family: string;
  version: number | null;
  status: Level;
  created_at: string;
  owner: string | null;
  review: IReview | null;
  summary: Record<string, unknown>;
  copy_uri: string | null;
}

export interface IFamilyDetail {
  name: string;
  owner: string;
  description: string;
  tags: string[];
  status: string;
  production_version: number | null;
  versions: IVersion[];
  changes: IChange[];
  lineage: ILineage;
  reports: IReport[];
}

export type JobState = 'running' | 'succeeded' | 'failed';

export interface IJob {
  id: string;
  action: 'promote' | 'rollback';
  family: string;
  version: number | null;
  state: JobState;
  started_at: string;
  ended_at: string | null;
  lines: string[];
  error: string | null;
  notebook: string | null;
  production_version: number | null;
}
