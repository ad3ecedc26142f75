// `sluice sessions …`: wires the verbs; `ls` is the default.
import { Command } from 'commander';
import type { Factory } from '../../factory.js';
import { defineSessionsExport } from './export.js';
import { defineSessionsList } from './list.js';
import { defineSessionsReplay } from './replay.js';
import { defineSessionsShow } from './show.js';

export function defineSessions(f: Factory): Command {
  return new Command('sessions')
    .description('recorded sessions: yours, or all of them for audit readers')
    .addCommand(defineSessionsList(f), { isDefault: true })
    .addCommand(defineSessionsShow(f))
    .addCommand(defineSessionsReplay(f))
    .addCommand(defineSessionsExport(f));
}
