/**
 * The "Features" side panel: a React view of `FeaturesModel`.
 *
 * Every element a test or a person acts on has a stable `data-testid` (prefix `nbf-`), so
 * browser tests never depend on the layout or the wording.
 */
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import React, { useEffect, useRef, useState } from 'react';

import { diffLineKind, freshnessText, levelClass, when } from './format';
import { FeaturesModel, IDeprecationForm } from './model';
import { IFamilyDetail, IFamilySummary, IJob, IReport, IVersion } from './types';

/** What the panel asks of the application (opening things lives outside the view). */
export interface IPanelActions {
  openReport(report: IReport): void;
  openNotebook(path: string): void;
  reviewReport(report: IReport): void;
}

export const PANEL_ID = 'nbfeatures-panel';

export class FeaturesPanel extends ReactWidget {
  constructor(
    readonly model: FeaturesModel,
    private readonly _actions: IPanelActions,
    private readonly _languages: IEditorLanguageRegistry | null
  ) {
    super();
    this.id = PANEL_ID;
    this.addClass('nbf-panel');
    this.title.caption = 'Features';
  }

  /** Load the list the first time the panel is shown, not at JupyterLab's start. */
  protected onAfterShow(): void {
    if (this.model.families === null && !this.model.loadingFamilies) {
      void this.model.refresh();
    }
  }

  protected render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <PanelView model={this.model} actions={this._actions} languages={this._languages} />}
      </UseSignal>
    );
  }
}

interface IViewProps {
  model: FeaturesModel;
  actions: IPanelActions;
  languages: IEditorLanguageRegistry | null;
}

function PanelView({ model, actions, languages }: IViewProps): JSX.Element {
  return (
    <div className="nbf-panel-body" data-testid="nbf-panel">
      <header className="nbf-header">
        <h2>Features</h2>
        <button
          className="nbf-button nbf-button-quiet"
          data-testid="nbf-refresh"
          title="Reload the catalog"
          onClick={() => void model.refresh()}
        >
          Refresh
        </button>
      </header>
      <SearchBox model={model} />
      {model.error && (
        <div className="nbf-error" role="alert" data-testid="nbf-error">
          <strong>{model.error.action} failed.</strong>
          <span data-testid="nbf-error-message"> {model.error.message}</span>
          <button
            className="nbf-button nbf-button-quiet"
            data-testid="nbf-error-dismiss"
            onClick={() => model.clearError()}
          >
            Dismiss
          </button>
        </div>
      )}
      {model.job && <JobView job={model.job} actions={actions} />}
      {model.detail ? (
        <FamilyDetail
          key={model.detail.name}
          detail={model.detail}
          model={model}
          actions={actions}
          languages={languages}
        />
      ) : (
        <FamilyList model={model} />
      )}
    </div>
  );
}

/** A search box that asks the server after the user pauses typing. */
function SearchBox({ model }: { model: FeaturesModel }): JSX.Element {
  const [text, setText] = useState(model.query);
  const timer = useRef<number>(0);
  useEffect(() => () => window.clearTimeout(timer.current), []);
  const change = (value: string) => {
    setText(value);
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(() => {
      model.close();
      void model.search(value);
    }, 300);
  };
  return (
    <input
      className="nbf-search"
      type="search"
      placeholder="Search families, features, tags"
      aria-label="Search feature families"
      data-testid="nbf-search"
      value={text}
      onChange={event => change(event.target.value)}
    />
  );
}

function Badge(props: {
  level?: string | null;
  testid: string;
  title?: string;
  children: React.ReactNode;
}): JSX.Element {
  return (
    <span
      className={`nbf-badge nbf-badge-${props.level === undefined ? 'plain' : levelClass(props.level)}`}
      data-testid={props.testid}
      title={props.title}
    >
      {props.children}
    </span>
  );
}

function FamilyList({ model }: { model: FeaturesModel }): JSX.Element {
  if (model.families === null) {
    return <p className="nbf-muted">{model.loadingFamilies ? 'Loading…' : ''}</p>;
  }
  if (model.families.length === 0) {
    return (
      <p className="nbf-muted" data-testid="nbf-empty">
        {model.query ? `No family matches “${model.query}”.` : 'The catalog has no family yet.'}
      </p>
    );
  }
  return (
    <ul className="nbf-family-list" data-testid="nbf-family-list">
      {model.families.map(family => (
        <FamilyRow key={family.name} family={family} model={model} />
      ))}
    </ul>
  );
}

function FamilyRow({
  family,
  model
}: {
  family: IFamilySummary;
  model: FeaturesModel;
}): JSX.Element {
  return (
    <li
      className="nbf-family"
      data-testid={`nbf-family-${family.name}`}
      onClick={() => void model.open(family.name)}
      title={family.description}
    >
      <div className="nbf-family-name">{family.name}</div>
      <div className="nbf-badges">
        <Badge testid="nbf-badge-owner" title="owner">
          {family.owner}
        </Badge>
        <Badge testid="nbf-badge-status" level={family.status === 'deprecated' ? 'warn' : null}>
          {family.status}
        </Badge>
        <Badge
          testid="nbf-badge-production"
          level={family.production_version === null ? null : 'ok'}
          title="production version"
        >
          {family.production_version === null
            ? 'not in production'
            : `prod v${family.production_version}`}
        </Badge>
        <Badge
          testid="nbf-badge-freshness"
          level={family.freshness?.status ?? null}
          title="age of the newest event in the online store"
        >
          {freshnessText(family.freshness)}
        </Badge>
        <Badge
          testid="nbf-badge-report"
          level={family.report_status}
          title="worst status of the latest report of each kind"
        >
          {family.report_status === null ? 'no report' : `reports ${family.report_status}`}
        </Badge>
      </div>
    </li>
  );
}

function JobView({ job, actions }: { job: IJob; actions: IPanelActions }): JSX.Element {
  const target = job.version === null ? job.family : `${job.family} v${job.version}`;
  return (
    <section
      className={`nbf-job nbf-job-${job.state}`}
      data-testid="nbf-job"
      data-state={job.state}
    >
      <div className="nbf-job-title">
        {job.state === 'running' && <span className="nbf-spinner" aria-hidden="true" />}
        <span>
          {job.action === 'promote' ? 'Promotion' : 'Rollback'} of {target}:{' '}
          <strong data-testid="nbf-job-state">{job.state}</strong>
        </span>
      </div>
      {job.lines.length > 0 && (
        <pre className="nbf-job-lines" data-testid="nbf-job-lines">
          {job.lines.slice(-8).join('\n')}
        </pre>
      )}
      {job.state === 'succeeded' && job.production_version !== null && (
        <p data-testid="nbf-job-result">
          {job.family} v{job.production_version} is in production.
        </p>
      )}
      {job.state === 'failed' && job.error && (
        <p className="nbf-error-text" data-testid="nbf-job-error">
          {job.error}
        </p>
      )}
      {job.notebook && job.state !== 'running' && (
        <a
          href="#"
          data-testid="nbf-job-notebook"
          onClick={event => {
            event.preventDefault();
            actions.openNotebook(job.notebook!);
          }}
        >
          Open the executed notebook
        </a>
      )}
    </section>
  );
}

function FamilyDetail({
  detail,
  model,
  actions,
  languages
}: {
  detail: IFamilyDetail;
  model: FeaturesModel;
  actions: IPanelActions;
  languages: IEditorLanguageRegistry | null;
}): JSX.Element {
  const versions = [...detail.versions].sort((a, b) => b.version - a.version);
  const latest = versions.length > 0 ? versions[0].version : null;
  const [promoteVersion, setPromoteVersion] = useState<number | null>(latest);
  const shownNumber = model.shownVersion ?? detail.production_version ?? latest;
  const shown = versions.find(v => v.version === shownNumber) ?? null;
  return (
    <section className="nbf-detail" data-testid="nbf-detail" data-family={detail.name}>
      <button
        className="nbf-button nbf-button-quiet"
        data-testid="nbf-back"
        onClick={() => model.close()}
      >
        ← All families
      </button>
      <h3 data-testid="nbf-detail-name">{detail.name}</h3>
      {detail.description && <p className="nbf-muted">{detail.description}</p>}
      <div className="nbf-badges">
        <Badge testid="nbf-detail-owner">{detail.owner}</Badge>
        <Badge testid="nbf-detail-status" level={detail.status === 'deprecated' ? 'warn' : null}>
          {detail.status}
        </Badge>
        <Badge
          testid="nbf-production-version"
          level={detail.production_version === null ? null : 'ok'}
        >
          {detail.production_version === null
            ? 'not in production'
            : `prod v${detail.production_version}`}
        </Badge>
        {detail.tags.map(tag => (
          <Badge key={tag} testid="nbf-tag">
            #{tag}
          </Badge>
        ))}
      </div>

      <div className="nbf-actions">
        <select
          data-testid="nbf-promote-version"
          aria-label="version to promote"
          value={promoteVersion ?? ''}
          onChange={event => setPromoteVersion(Number(event.target.value))}
        >
          {versions.map(v => (
            <option key={v.version} value={v.version}>
              v{v.version}
            </option>
          ))}
        </select>
        <button
          className="nbf-button nbf-button-accept"
          data-testid="nbf-promote"
          disabled={model.jobRunning || versions.length === 0}
          onClick={() => void model.promote(detail.name, promoteVersion)}
        >
          Promote
        </button>
        <button
          className="nbf-button"
          data-testid="nbf-rollback"
          disabled={model.jobRunning || detail.production_version === null}
          onClick={() => void model.rollback(detail.name)}
        >
          Rollback
        </button>
        <button
          className="nbf-button nbf-button-warn"
          data-testid="nbf-deprecate"
          onClick={() => model.openDeprecateForm(!model.deprecateFormOpen)}
        >
          Deprecate
        </button>
      </div>
      {model.deprecateFormOpen && <DeprecateForm family={detail.name} model={model} />}

      <h4>Versions</h4>
      <table className="nbf-versions" data-testid="nbf-versions">
        <thead>
          <tr>
            <th>version</th>
            <th>status</th>
            <th>created</th>
            <th>hash</th>
          </tr>
        </thead>
        <tbody>
          {versions.map(v => (
            <VersionRow
              key={v.version}
              version={v}
              selected={v.version === shownNumber}
              onSelect={() => model.showVersion(v.version)}
            />
          ))}
        </tbody>
      </table>

      {shown && (
        <>
          <h4>
            Definition of v{shown.version} <span className="nbf-muted">({shown.language})</span>
          </h4>
          {shown.deprecation && (
            <p className="nbf-deprecation" data-testid="nbf-deprecation">
              Deprecated: {shown.deprecation.reason}
              {shown.deprecation.replacement && `; use ${shown.deprecation.replacement}`}
              {shown.deprecation.sunset && `; sunset ${shown.deprecation.sunset}`}
            </p>
          )}
          <HighlightedCode
            code={shown.transformation}
            language={shown.language}
            languages={languages}
          />
        </>
      )}

      <h4>Changes</h4>
      <Changes detail={detail} />

      <h4>Lineage</h4>
      <Lineage detail={detail} />

      <h4>Reports</h4>
      <Reports reports={detail.reports} actions={actions} />
    </section>
  );
}

function VersionRow({
  version,
  selected,
  onSelect
}: {
  version: IVersion;
  selected: boolean;
  onSelect: () => void;
}): JSX.Element {
  // The production alias is already the status; show only the other aliases.
  const others = version.aliases.filter(alias => alias !== version.status);
  const aliases = others.length > 0 ? ` (${others.join(', ')})` : '';
  return (
    <tr
      className={selected ? 'nbf-selected' : ''}
      data-testid={`nbf-version-${version.version}`}
      onClick={onSelect}
    >
      <td>v{version.version}</td>
      <td>
        {version.status}
        {aliases}
      </td>
      <td>{when(version.created_at)}</td>
      <td className="nbf-mono">{version.hash.slice(0, 10)}</td>
    </tr>
  );
}

/** The transformation, highlighted by JupyterLab's own CodeMirror languages when present. */
function HighlightedCode({
  code,
  language,
  languages
}: {
  code: string;
  language: string;
  languages: IEditorLanguageRegistry | null;
}): JSX.Element {
  const ref = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const element = ref.current;
    if (!element) {
      return;
    }
    element.textContent = '';
    if (!languages) {
      element.textContent = code;
      return;
    }
    const spec = languages.findBest(language);
    languages.highlight(code, spec, element).catch(() => {
      // An unknown or failing grammar still shows the code, unhighlighted.
      element.textContent = code;
    });
  }, [code, language, languages]);
  return (
    <pre
      ref={ref}
      className="nbf-code cm-s-jupyter"
      data-testid="nbf-definition"
      data-language={language}
    />
  );
}

function Changes({ detail }: { detail: IFamilyDetail }): JSX.Element {
  if (detail.changes.length === 0) {
    return <p className="nbf-muted">Only one version so far.</p>;
  }
  return (
    <div data-testid="nbf-changes">
      {detail.changes.map(change => (
        <details key={`${change.from}-${change.to}`} className="nbf-change">
          <summary>
            v{change.from} → v{change.to}
          </summary>
          <pre className="nbf-diff">
            {change.diff.split('\n').map((line, index) => (
              <div key={index} className={`nbf-diff-${diffLineKind(line)}`}>
                {line || ' '}
              </div>
            ))}
          </pre>
        </details>
      ))}
    </div>
  );
}

function sourceText(source: Record<string, unknown> | string): string {
  if (typeof source === 'string') {
    return source;
  }
  const name = source.name ?? source.table ?? '';
  const where = source.path ?? source.uri ?? source.location ?? '';
  return [name, where].filter(part => part !== '').join(': ') || JSON.stringify(source);
}

function Lineage({ detail }: { detail: IFamilyDetail }): JSX.Element {
  const { sources, runs } = detail.lineage;
  return (
    <div data-testid="nbf-lineage">
      <p className="nbf-label">Sources</p>
      <ul className="nbf-plain-list">
        {sources.length === 0 && <li className="nbf-muted">none recorded</li>}
        {sources.map((source, index) => (
          <li key={index} className="nbf-mono">
            {sourceText(source)}
          </li>
        ))}
      </ul>
      <p className="nbf-label">Training sets and model runs that used it</p>
      <ul className="nbf-plain-list" data-testid="nbf-lineage-runs">
        {runs.length === 0 && <li className="nbf-muted">none yet</li>}
        {runs.map(run => (
          <li key={run.run_id}>
            {run.name || run.run_id} <span className="nbf-muted">in {run.experiment}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Reports({
  reports,
  actions
}: {
  reports: IReport[];
  actions: IPanelActions;
}): JSX.Element {
  if (reports.length === 0) {
    return (
      <p className="nbf-muted" data-testid="nbf-reports-empty">
        No report yet.
      </p>
    );
  }
  return (
    <ul className="nbf-reports" data-testid="nbf-reports">
      {reports.map(report => (
        <li key={report.id} data-testid={`nbf-report-${report.id}`}>
          <Badge testid="nbf-report-status" level={report.status}>
            {report.kind} {report.status}
          </Badge>
          <span className="nbf-muted nbf-gap">
            {report.version === null ? '' : `v${report.version}, `}
            {when(report.created_at)}
          </span>
          {report.review ? (
            <span
              className="nbf-muted nbf-gap"
              data-testid="nbf-report-reviewed"
              title={report.review.comment}
            >
              reviewed by {report.review.reviewer}
            </span>
          ) : (
            <button
              className="nbf-button nbf-button-quiet"
              data-testid={`nbf-report-review-${report.id}`}
              onClick={() => actions.reviewReport(report)}
            >
              Mark reviewed
            </button>
          )}
          <button
            className="nbf-button nbf-button-quiet"
            data-testid={`nbf-report-open-${report.id}`}
            onClick={() => actions.openReport(report)}
          >
            Open
          </button>
        </li>
      ))}
    </ul>
  );
}

function DeprecateForm({ family, model }: { family: string; model: FeaturesModel }): JSX.Element {
  const [form, setForm] = useState<IDeprecationForm>({ reason: '', replacement: '', sunset: '' });
  const [busy, setBusy] = useState(false);
  const field = (name: keyof IDeprecationForm) => ({
    value: form[name],
    onChange: (event: React.ChangeEvent<HTMLInputElement>) =>
      setForm({ ...form, [name]: event.target.value })
  });
  return (
    <form
      className="nbf-form"
      data-testid="nbf-deprecate-form"
      onSubmit={event => {
        event.preventDefault();
        setBusy(true);
        void model.deprecate(family, form).finally(() => setBusy(false));
      }}
    >
      <label>
        Reason
        <input required data-testid="nbf-deprecate-reason" {...field('reason')} />
      </label>
      <label>
        Replacement (optional)
        <input
          data-testid="nbf-deprecate-replacement"
          placeholder="family name"
          {...field('replacement')}
        />
      </label>
      <label>
        Sunset (optional)
        <input type="date" data-testid="nbf-deprecate-sunset" {...field('sunset')} />
      </label>
      <div className="nbf-actions">
        <button
          type="submit"
          className="nbf-button nbf-button-warn"
          data-testid="nbf-deprecate-submit"
          disabled={busy}
        >
          Deprecate {family}
        </button>
        <button
          type="button"
          className="nbf-button nbf-button-quiet"
          onClick={() => model.openDeprecateForm(false)}
        >
          Cancel
        </button>
      </div>
    </form>
  );
}
