/**
 * Monitoring reports in the main area: the Evidently page in an iframe.
 *
 * The page is served by the server extension (`reports/ID/html`) and authenticated by the
 * Jupyter login cookie, so the iframe needs no token in its URL.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { IFrame } from '@jupyterlab/ui-components';

import { apiURL } from './handler';
import { IReport } from './types';

/** The main-area widget's id for a report, so a second "Open" finds the first. */
export function reportWidgetId(reportId: string): string {
  return `nbfeatures-report-${reportId.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export function createReportWidget(report: IReport): MainAreaWidget<IFrame> {
  // Scripts run (Evidently draws its plots with them) but in an opaque origin: without
  // allow-same-origin the page cannot reach JupyterLab's cookies or API.
  const content = new IFrame({ sandbox: ['allow-scripts'] });
  content.url = apiURL(`reports/${encodeURIComponent(report.id)}/html`);
  content.addClass('nbf-report-frame');
  const widget = new MainAreaWidget({ content });
  widget.id = reportWidgetId(report.id);
  const version = report.version === null ? '' : ` v${report.version}`;
  widget.title.label = `${report.family}${version} ${report.kind}`;
  widget.title.caption = `${report.kind} report of ${report.family}${version}: ${report.status}`;
  widget.title.closable = true;
  widget.node.dataset.testid = 'nbf-report-view';
  return widget;
}
