/**
 * The palette commands: one per action of the panel, calling the same model methods as the
 * buttons. A command given no family acts on the family open in the panel, or asks for one.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, MainAreaWidget } from '@jupyterlab/apputils';

import { requestAPI } from './handler';
import { FeaturesModel } from './model';
import { FeaturesPanel } from './panel';
import { createReportWidget, reportWidgetId } from './reports';
import { IFamilySummary, IReport } from './types';

export namespace CommandIDs {
  export const showPanel = 'nbfeatures:show-panel';
  export const refresh = 'nbfeatures:refresh';
  export const promote = 'nbfeatures:promote';
  export const rollback = 'nbfeatures:rollback';
  export const deprecate = 'nbfeatures:deprecate';
  export const openReport = 'nbfeatures:open-report';
  export const reviewReport = 'nbfeatures:review-report';
}

const CATEGORY = 'Features';

/** Open a report in the main area, or bring forward the tab that already shows it. */
export function openReport(app: JupyterFrontEnd, report: IReport): void {
  const id = reportWidgetId(report.id);
  for (const widget of app.shell.widgets('main')) {
    if (widget.id === id) {
      app.shell.activateById(id);
      return;
    }
  }
  const widget: MainAreaWidget = createReportWidget(report);
  app.shell.add(widget, 'main');
  app.shell.activateById(widget.id);
}

/** Ask for a report's review comment, then mark it reviewed. */
export async function reviewReport(model: FeaturesModel, report: IReport): Promise<void> {
  const answer = await InputDialog.getText({
    title: `Mark the ${report.kind} report of ${report.family} reviewed`,
    label: 'Comment (optional)',
    placeholder: 'what you checked, what you decided'
  });
  if (answer.button.accept) {
    await model.review(report.id, answer.value ?? '');
  }
}

export function registerCommands(
  app: JupyterFrontEnd,
  model: FeaturesModel,
  panel: FeaturesPanel,
  palette: ICommandPalette | null
): void {
  const { commands } = app;

  const showPanel = () => app.shell.activateById(panel.id);

  /** The family a command acts on: its argument, the open one, or one the user picks. */
  const chooseFamily = async (args: { family?: unknown }, verb: string): Promise<string | null> => {
    if (typeof args.family === 'string' && args.family) {
      return args.family;
    }
    if (model.detail) {
      return model.detail.name;
    }
    let names: string[];
    try {
      const answer = await requestAPI<{ families: IFamilySummary[] }>('families');
      names = answer.families.map(f => f.name);
    } catch (error) {
      model.reportError('Loading the feature families', error);
      showPanel();
      return null;
    }
    if (names.length === 0) {
      return null;
    }
    const picked = await InputDialog.getItem({ title: `Family to ${verb}`, items: names });
    return picked.button.accept ? picked.value : null;
  };

  /** The report a command acts on: its argument, or one of the open family's reports. */
  const chooseReport = async (
    args: { reportId?: unknown },
    verb: string
  ): Promise<IReport | null> => {
    if (typeof args.reportId === 'string' && args.reportId) {
      try {
        return await requestAPI<IReport>(`reports/${encodeURIComponent(args.reportId)}`);
      } catch (error) {
        model.reportError(`Loading report ${args.reportId}`, error);
        showPanel();
        return null;
      }
    }
    const reports = model.detail?.reports ?? [];
    if (reports.length === 0) {
      showPanel();
      return null;
    }
    const label = (r: IReport) => `${r.kind} ${r.status} ${r.created_at} [${r.id}]`;
    const picked = await InputDialog.getItem({
      title: `Report to ${verb}`,
      items: reports.map(label)
    });
    return picked.button.accept ? (reports.find(r => label(r) === picked.value) ?? null) : null;
  };

  commands.addCommand(CommandIDs.showPanel, {
    label: 'Show the Features panel',
    execute: showPanel
  });
  commands.addCommand(CommandIDs.refresh, {
    label: 'Reload the feature catalog',
    execute: () => model.refresh()
  });
  commands.addCommand(CommandIDs.promote, {
    label: args => (args.family ? `Promote ${args.family}` : 'Promote a feature family'),
    execute: async args => {
      const family = await chooseFamily(args, 'promote');
      if (family) {
        showPanel();
        const version = typeof args.version === 'number' ? args.version : null;
        await model.promote(family, version);
      }
    }
  });
  commands.addCommand(CommandIDs.rollback, {
    label: args => (args.family ? `Roll back ${args.family}` : 'Roll back a feature family'),
    execute: async args => {
      const family = await chooseFamily(args, 'roll back');
      if (family) {
        showPanel();
        await model.rollback(family);
      }
    }
  });
  commands.addCommand(CommandIDs.deprecate, {
    label: args => (args.family ? `Deprecate ${args.family}` : 'Deprecate a feature family'),
    execute: async args => {
      const family = await chooseFamily(args, 'deprecate');
      if (family) {
        showPanel();
        if (model.detail?.name !== family) {
          await model.open(family);
        }
        // The reason, replacement and sunset are entered in the panel's form.
        model.openDeprecateForm(true);
      }
    }
  });
  commands.addCommand(CommandIDs.openReport, {
    label: 'Open a monitoring report',
    execute: async args => {
      const report = await chooseReport(args, 'open');
      if (report) {
        openReport(app, report);
      }
    }
  });
  commands.addCommand(CommandIDs.reviewReport, {
    label: 'Mark a monitoring report reviewed',
    execute: async args => {
      const report = await chooseReport(args, 'mark reviewed');
      if (report) {
        await reviewReport(model, report);
      }
    }
  });

  if (palette) {
    for (const command of Object.values(CommandIDs)) {
      palette.addItem({ command, category: CATEGORY });
    }
  }
}
