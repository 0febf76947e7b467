/**
 * The panel's state and the actions that change it.
 *
 * The React view only renders this model; the palette commands call the same methods, so a
 * command and a button can never do two different things. Every failed call becomes
 * `error` (what was being done, and the server's message) instead of a silent console log.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { postAPI, requestAPI } from './handler';
import { IFamilyDetail, IFamilySummary, IJob, IReport } from './types';

/** What failed, in words a person can act on. */
export interface IPanelError {
  action: string;
  message: string;
}

export interface IDeprecationForm {
  reason: string;
  replacement: string;
  sunset: string;
}

/** How long to wait between two looks at a running job (a promotion takes tens of seconds). */
const JOB_POLL_MS = 1000;

export class FeaturesModel {
  query = '';
  families: IFamilySummary[] | null = null;
  loadingFamilies = false;
  detail: IFamilyDetail | null = null;
  loadingDetail = false;
  /** The version whose definition is shown; null means the production (or latest) one. */
  shownVersion: number | null = null;
  job: IJob | null = null;
  error: IPanelError | null = null;
  deprecateFormOpen = false;

  get changed(): ISignal<FeaturesModel, void> {
    return this._changed;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    window.clearTimeout(this._pollTimer);
    Signal.clearData(this);
  }

  /** Whether a promotion or rollback started here is still running. */
  get jobRunning(): boolean {
    return this.job !== null && this.job.state === 'running';
  }

  clearError(): void {
    this.error = null;
    this._emit();
  }

  async search(query: string): Promise<void> {
    this.query = query;
    await this.refresh();
  }

  /** Reload the family list (and the open family, so badges and details agree). */
  async refresh(): Promise<void> {
    const ticket = ++this._listTicket;
    this.loadingFamilies = true;
    this._emit();
    const query = this.query.trim();
    const path = query ? `families?q=${encodeURIComponent(query)}` : 'families';
    try {
      const answer = await requestAPI<{ families: IFamilySummary[] }>(path);
      // A slower answer to an older search must not replace a newer one.
      if (ticket === this._listTicket) {
        this.families = answer.families;
      }
    } catch (error) {
      this.reportError('Loading the feature families', error);
    } finally {
      if (ticket === this._listTicket) {
        this.loadingFamilies = false;
      }
      this._emit();
    }
  }

  /** Open a family's detail view. */
  async open(name: string): Promise<void> {
    this.loadingDetail = true;
    this.deprecateFormOpen = false;
    this.shownVersion = null;
    this._emit();
    try {
      this.detail = await requestAPI<IFamilyDetail>(`families/${encodeURIComponent(name)}`);
    } catch (error) {
      this.reportError(`Opening family ${name}`, error);
    } finally {
      this.loadingDetail = false;
      this._emit();
    }
  }

  /** Back to the list. */
  close(): void {
    this.detail = null;
    this.deprecateFormOpen = false;
    this.shownVersion = null;
    this._emit();
  }

  showVersion(version: number): void {
    this.shownVersion = version;
    this._emit();
  }

  /** Promote `version` (null: the latest) of `family`; the job is then polled. */
  async promote(family: string, version: number | null): Promise<void> {
    const what = `Promoting ${family}${version === null ? '' : ` v${version}`}`;
    await this._startJob(what, `families/${encodeURIComponent(family)}/promote`, {
      version
    });
  }

  /** Put the previous production version of `family` back. */
  async rollback(family: string): Promise<void> {
    await this._startJob(
      `Rolling back ${family}`,
      `families/${encodeURIComponent(family)}/rollback`,
      {}
    );
  }

  openDeprecateForm(open = true): void {
    this.deprecateFormOpen = open;
    this._emit();
  }

  /** Deprecate `family`; the server answers with the family's new detail. */
  async deprecate(family: string, form: IDeprecationForm): Promise<boolean> {
    const body: Record<string, string> = { reason: form.reason.trim() };
    if (form.replacement.trim()) {
      body.replacement = form.replacement.trim();
    }
    if (form.sunset.trim()) {
      body.sunset = form.sunset.trim();
    }
    try {
      this.detail = await postAPI<IFamilyDetail>(
        `families/${encodeURIComponent(family)}/deprecate`,
        body
      );
      this.deprecateFormOpen = false;
      this.error = null;
      this._emit();
      void this.refresh();
      return true;
    } catch (error) {
      this.reportError(`Deprecating ${family}`, error);
      return false;
    }
  }

  /** Mark a report reviewed by the Jupyter user, with an optional comment. */
  async review(reportId: string, comment: string): Promise<IReport | null> {
    try {
      const record = await postAPI<IReport>(`reports/${encodeURIComponent(reportId)}/review`, {
        comment
      });
      if (this.detail) {
        this.detail = {
          ...this.detail,
          reports: this.detail.reports.map(r => (r.id === record.id ? record : r))
        };
      }
      this.error = null;
      this._emit();
      return record;
    } catch (error) {
      this.reportError(`Marking report ${reportId} reviewed`, error);
      return null;
    }
  }

  private async _startJob(what: string, path: string, body: unknown): Promise<void> {
    if (this.jobRunning) {
      this.reportError(
        what,
        new Error(`${this.job!.action} of ${this.job!.family} is still running`)
      );
      return;
    }
    try {
      const answer = await postAPI<{ job: IJob }>(path, body);
      this.job = answer.job;
      this.error = null;
      this._emit();
      this._schedulePoll();
    } catch (error) {
      this.reportError(what, error);
    }
  }

  private _schedulePoll(): void {
    window.clearTimeout(this._pollTimer);
    this._pollTimer = window.setTimeout(() => void this._poll(), JOB_POLL_MS);
  }

  private async _poll(): Promise<void> {
    if (this._disposed || !this.job) {
      return;
    }
    const id = this.job.id;
    try {
      this.job = await requestAPI<IJob>(`jobs/${encodeURIComponent(id)}`);
    } catch (error) {
      // The job goes on in the server; say we lost sight of it rather than guess its end.
      this.reportError(`Following job ${id}`, error);
      return;
    }
    this._emit();
    if (this.job.state === 'running') {
      this._schedulePoll();
      return;
    }
    // The production version changed (or not): reload what shows it.
    await this.refresh();
    if (this.detail && this.detail.name === this.job.family) {
      await this.open(this.job.family);
    }
  }

  /** Show that `action` failed, with the error's message (the commands use it too). */
  reportError(action: string, error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.error = { action, message };
    this._emit();
  }

  private _emit(): void {
    if (!this._disposed) {
      this._changed.emit();
    }
  }

  private _changed = new Signal<FeaturesModel, void>(this);
  private _disposed = false;
  private _listTicket = 0;
  private _pollTimer = 0;
}
