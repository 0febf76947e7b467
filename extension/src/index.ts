/**
 * nbfeatures in JupyterLab: the "Features" side panel and its palette commands.
 *
 * The panel talks only to the nbfeatures server extension (`nbfeatures/api/...`), which
 * calls the same catalog, promotion and monitoring code as the command line.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { LabIcon } from '@jupyterlab/ui-components';

import { openReport, registerCommands, reviewReport } from './commands';
import { FeaturesModel } from './model';
import { FeaturesPanel } from './panel';
import featuresSvg from '../style/features.svg';

const featuresIcon = new LabIcon({ name: 'nbfeatures:features', svgstr: featuresSvg });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbfeatures-labextension:plugin',
  description: 'The Features panel: catalog, promotion, rollback, deprecation and reports.',
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer, IEditorLanguageRegistry],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    languages: IEditorLanguageRegistry | null
  ) => {
    const model = new FeaturesModel();
    const panel = new FeaturesPanel(
      model,
      {
        openReport: report => openReport(app, report),
        openNotebook: path => void app.commands.execute('docmanager:open', { path }),
        reviewReport: report => void reviewReport(model, report)
      },
      languages
    );
    panel.title.icon = featuresIcon;
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, panel.id);
    }
    registerCommands(app, model, panel, palette);
  }
};

export default plugin;
