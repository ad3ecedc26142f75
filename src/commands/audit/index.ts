// `sluice audit …`: wires the verbs.
import { Command } from 'commander';
import type { Factory } from '../../factory.js';
import { defineAuditExport } from './export.js';
import { defineAuditKey } from './key.js';
import { defineAuditVerify } from './verify.js';

export function defineAudit(f: Factory): Command {
  return new Command('audit')
    .description('the tamper-evident audit trail')
    .addCommand(defineAuditExport(f))
    .addCommand(defineAuditVerify(f))
    .addCommand(defineAuditKey(f));
}
