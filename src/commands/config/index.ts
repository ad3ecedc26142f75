// `sluice config …`: wires the verbs.
import { Command } from 'commander';
import type { Factory } from '../../factory.js';
import { defineConfigGet } from './get.js';
import { defineConfigSet } from './set.js';

export function defineConfig(f: Factory): Command {
  return new Command('config').description('CLI settings').addCommand(defineConfigSet(f)).addCommand(defineConfigGet(f));
}
